"""Models as chains of named stages with listed cut points (see :class:`CutModel`)."""

from .base import CutModel
from .mlp import MLP
from .resnet20 import ResNet20
from .tiny10 import Tiny10
from .tv_resnet18 import TVResNet18
from .vgg import VGG, vgg11, vgg16

__all__ = ["CutModel", "MLP", "ResNet20", "TVResNet18", "Tiny10", "VGG", "vgg11", "vgg16"]
