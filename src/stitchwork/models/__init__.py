"""Models as chains of named stages with listed cut points (see :class:`CutModel`)."""

from .base import CutModel
from .mlp import MLP
from .module_cut import CutRefusedError, ModuleCutModel
from .outside import module_model, torchvision_model, vit_tiny
from .resnet20 import ResNet20
from .tiny10 import Tiny10
from .tv_resnet18 import TVResNet18
from .vgg import VGG, vgg11, vgg16

__all__ = ["CutModel", "CutRefusedError", "MLP", "ModuleCutModel", "ResNet20", "TVResNet18", "Tiny10", "VGG", "module_model", "torchvision_model", "vgg11", "vgg16", "vit_tiny"]
