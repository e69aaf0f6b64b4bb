"""Training recipes, the classifier Lightning module, and evaluation loops."""

from ..utils.modules import model_device
from .classifier import Classifier, NonFiniteLossError
from .evaluate import evaluate
from .fit import check_trainer_options, fit_classifier
from .recipe import TrainRecipe, build_optimizer, build_scheduler, lr_factor
from .resume import PreemptionCheckpoint

__all__ = [
    "Classifier",
    "NonFiniteLossError",
    "PreemptionCheckpoint",
    "TrainRecipe",
    "build_optimizer",
    "build_scheduler",
    "check_trainer_options",
    "evaluate",
    "fit_classifier",
    "lr_factor",
    "model_device",
]
