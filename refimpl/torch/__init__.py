"""torch-native front ends over ``refimpl``: ``nn.Module``, ``optim.Optimizer`` and
``autograd.Function`` versions of the documented APIs, with the documented signatures.

Importing this package imports torch; nothing else in ``backends`` does so eagerly.
"""

from refimpl.torch.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency  # noqa: F401,E501 (captum-style attributions)
from refimpl.torch.eigendistortion import Eigendistortion  # noqa: F401 (plenoptic signature)
from refimpl.torch.models import TorchModel, as_model  # noqa: F401 (the derivative protocol)
from refimpl.torch.optim import *  # noqa: F403 (the whole of rai_toolbox.optim: L1qFrankWolfe, ...)
from refimpl.torch.perturbations import *  # noqa: F403 (AdditivePerturbation, uniform_like_*_n_ball_)
from refimpl.torch.perturbed import *  # noqa: F403 (perturbed, FenchelYoungLoss)
from refimpl.torch.solvers import *  # noqa: F403 (gradient_ascent, random_restart, PerturbationModel)
