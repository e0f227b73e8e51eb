"""Networks: exact NB201 cells and supernet, CIFAR ResNet backbones, the Tr-Net splice.

* :mod:`.nb201` -- ``NB201Network`` (the benchmark's inference network, layer for layer);
* :mod:`.supernet` -- ``NB201Supernet`` (DARTS mixed ops, shared alpha, DARTS+PT projection);
* :mod:`.resnet` -- ``CifarResNet`` / ``build_backbone`` (ResNet-20/32/56, wide ResNet-20);
* :mod:`.splice` -- ``build_tr_net`` / ``build_tr_supernet`` (frozen pre-trained prefix + NB201 suffix);
* :mod:`.checkpoint` -- ``save_backbone`` / ``load_backbone``;
* :mod:`.counting` -- ``count_params`` / ``count_flops`` (NB201 conventions);
* :mod:`.memory` -- saved-for-backward bytes, CUDA peak, process peak RSS.
"""
from harness.networks.checkpoint import load_backbone, save_backbone
from harness.networks.counting import count_flops, count_params
from harness.networks.memory import SavedTensorCounter, saved_tensor_bytes, step_memory
from harness.networks.nb201 import NB201Network, search_cell_position
from harness.networks.resnet import BACKBONES, CifarResNet, build_backbone
from harness.networks.splice import (FrozenPrefix, TrNet, TrSupernet, build_tr_net, build_tr_supernet,
                                     trainable_parameters)
from harness.networks.supernet import NB201Supernet

__all__ = [
    "BACKBONES", "CifarResNet", "FrozenPrefix", "NB201Network", "NB201Supernet", "SavedTensorCounter", "TrNet",
    "TrSupernet", "build_backbone", "build_tr_net", "build_tr_supernet", "count_flops", "count_params",
    "load_backbone", "save_backbone", "saved_tensor_bytes", "search_cell_position", "step_memory",
    "trainable_parameters",
]
