"""Feature visualization: activation maximisation of channels at named cut points, top
dataset examples, response tables and comparison grids (endpoints and merged models).

Recipe after Olah et al. (2017) as used by Zou et al. for permutation-merged models:
Fourier parameterisation (colour-decorrelated for RGB), random pad/jitter/scale/rotate,
Adam; always at the model's own input size and normalisation.
"""

from .compare import Comparison, compare_models, comparison_figures
from .examples import TopExamples, top_examples, top_variance_channels
from .figures import GridLayout, comparison_grid, tile
from .maximize import MaximizeSettings, Visualization, maximize, score_images
from .param import FourierImage, PixelRange, data_statistics
from .response import ResponseTable, channel_responses
from .target import ChannelError, channel_values, check_target
from .transforms import Augment, augment

__all__ = [
    "Augment",
    "ChannelError",
    "Comparison",
    "FourierImage",
    "GridLayout",
    "MaximizeSettings",
    "PixelRange",
    "ResponseTable",
    "TopExamples",
    "Visualization",
    "augment",
    "channel_responses",
    "channel_values",
    "compare_models",
    "comparison_figures",
    "check_target",
    "comparison_grid",
    "data_statistics",
    "maximize",
    "score_images",
    "tile",
    "top_examples",
    "top_variance_channels",
]
