"""Compact U-Net/FPN segmentation net for the nuclei detector (output stride 2; nuclei are small)."""
import importlib.util
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402,F401  (provides MEAN/STD for polyp/model.py's `from common import MEAN, STD`)

# Same building blocks and the same uint8-NHWC export wrapper (normalisation inside the graph) as the polyp model.
_spec = importlib.util.spec_from_file_location("polyp_model", os.path.join(HERE, "..", "polyp", "model.py"))
_pm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pm)
ExportWrapper, Res, cbr = _pm.ExportWrapper, _pm.Res, _pm.cbr


class NucleiNet(nn.Module):
    """Encoder /2../16 + FPN decoder back to /2. Input: normalised float NCHW. Output: logits [N,out,H/2,W/2]:
    channel 0 the nucleus interior; with out=2, channel 1 the nucleus core (common.core_target), the seeds
    that split touching nuclei."""
    stride = 2

    def __init__(self, w=(24, 32, 64, 96, 128), d=(48, 32), out=1):
        super().__init__()
        self.stem = cbr(3, w[0], 2)                                   # /2
        self.e1 = cbr(w[0], w[1])                                     # /2
        self.e2 = nn.Sequential(cbr(w[1], w[2], 2), cbr(w[2], w[2]))  # /4
        self.e3 = nn.Sequential(cbr(w[2], w[3], 2), Res(w[3]))        # /8
        self.e4 = nn.Sequential(cbr(w[3], w[4], 2), Res(w[4], 2))     # /16
        self.l4 = nn.Conv2d(w[4], d[0], 1)
        self.l3 = nn.Conv2d(w[3], d[0], 1)
        self.l2 = nn.Conv2d(w[2], d[0], 1)
        self.s3 = cbr(d[0], d[0])
        self.s2 = cbr(d[0], d[0])
        self.r2 = nn.Conv2d(d[0], d[1], 1)
        self.l1 = nn.Conv2d(w[1], d[1], 1)
        self.s1 = nn.Sequential(cbr(d[1], d[1]), cbr(d[1], d[1]))
        self.head = nn.Conv2d(d[1], out, 1)
        nn.init.constant_(self.head.bias, -1.0)

    @staticmethod
    def up(x):
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x):
        x1 = self.e1(self.stem(x))
        x2 = self.e2(x1)
        x3 = self.e3(x2)
        x4 = self.e4(x3)
        y = self.s3(self.l3(x3) + self.up(self.l4(x4)))
        y = self.s2(self.l2(x2) + self.up(y))
        y = self.s1(self.l1(x1) + self.up(self.r2(y)))
        return self.head(y)
