"""Compact U-Net-like segmentation net for the polyp detector (output stride 4)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import MEAN, STD


def cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Res(nn.Module):
    def __init__(self, c, dilation=1):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, 1, dilation, dilation=dilation, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)), inplace=True)
        y = self.b2(self.c2(y))
        return F.relu(x + y, inplace=True)


class Up(nn.Module):
    def __init__(self, cin, cskip, cout):
        super().__init__()
        self.conv = nn.Sequential(cbr(cin + cskip, cout), cbr(cout, cout))

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], 1))


def up(x):
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def add_decoder(net, c, d):
    """The FPN-style decoder on encoder features of c = (/4, /8, /16, /32) channels, as attributes of `net`
    (their names are the checkpoints' and the exported graphs' layer names): global context at /32, 1x1
    laterals, top-down sums with 3x3 blocks, head at /4 (bias -2: few positives at the start)."""
    net.ctx = nn.Sequential(nn.Conv2d(c[3], c[3], 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(inplace=True))
    net.l4 = nn.Conv2d(c[3], d[0], 1)
    net.l3 = nn.Conv2d(c[2], d[0], 1)
    net.l2 = nn.Conv2d(c[1], d[0], 1)
    net.s3 = cbr(d[0], d[0])
    net.s2 = cbr(d[0], d[0])
    net.r2 = nn.Conv2d(d[0], d[1], 1)
    net.l1 = nn.Conv2d(c[0], d[1], 1)
    net.s1 = nn.Sequential(cbr(d[1], d[1]), cbr(d[1], d[1]))
    net.head = nn.Conv2d(d[1], 1, 1)
    nn.init.constant_(net.head.bias, -2.0)


def decode(net, x1, x2, x3, x4):
    """add_decoder's layers applied to the four feature maps: logits at /4."""
    x4 = x4 + net.ctx(x4.mean((2, 3), keepdim=True))
    y = net.s3(net.l3(x3) + up(net.l4(x4)))
    y = net.s2(net.l2(x2) + up(y))
    y = net.s1(net.l1(x1) + up(net.r2(y)))
    return net.head(y)


class PolypNet(nn.Module):
    """Light encoder + FPN-style decoder. Input: normalised float NCHW. Output: logits [N,1,H/4,W/4]."""
    stride = 4

    def __init__(self, w=(32, 48, 96, 160, 256), d=(64, 48)):
        super().__init__()
        # patchify stem: 4x4 stride-4 conv straight to /4 (cheap on CPU)
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 4, 4, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.e1 = cbr(w[0], w[1])                                     # /4
        self.e2 = nn.Sequential(cbr(w[1], w[2], 2), cbr(w[2], w[2]))  # /8
        self.e3 = nn.Sequential(cbr(w[2], w[3], 2), Res(w[3]))        # /16
        self.e4 = nn.Sequential(cbr(w[3], w[4], 2), Res(w[4]))        # /32
        add_decoder(self, (w[1], w[2], w[3], w[4]), d)

    def forward(self, x):
        x0 = self.stem(x)
        x1 = self.e1(x0)
        x2 = self.e2(x1)
        x3 = self.e3(x2)
        x4 = self.e4(x3)
        return decode(self, x1, x2, x3, x4)


class ExportWrapper(nn.Module):
    """uint8 NHWC RGB -> prob [N,1,S/4,S/4]; normalisation inside the graph; optional h-flip TTA."""

    def __init__(self, net, flip_tta=False):
        super().__init__()
        self.net = net
        self.flip_tta = flip_tta
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, image):
        x = image.permute(0, 3, 1, 2).float()
        x = (x - self.mean) / self.std
        p = torch.sigmoid(self.net(x))
        if self.flip_tta:
            pf = torch.sigmoid(self.net(torch.flip(x, [3])))
            p = 0.5 * (p + torch.flip(pf, [3]))
        return p


class PretrainedPolypNet(nn.Module):
    """PolypNet's decoder on a COCO-trained backbone (pretrained.py: NanoDet's CSP backbone, features at
    /4, /8, /16, /32 with 64/128/256/512 channels). Same input (ImageNet-normalised RGB) and output (logits
    [N,1,H/4,W/4]) as PolypNet, so the trainer, evaluation and export treat both alike."""
    stride = 4

    def __init__(self, backbone, d=(64, 48)):
        super().__init__()
        self.backbone = backbone
        add_decoder(self, (64, 128, 256, 512), d)

    def forward(self, x):
        f = self.backbone(x)
        return decode(self, f[4], f[8], f[16], f[32])


def build_net(args_like):
    """The net a run's arguments name (--arch; runs before it existed are 'polypnet')."""
    get = args_like.get if isinstance(args_like, dict) else lambda k, dflt=None: getattr(args_like, k, dflt)
    dec = tuple(int(v) for v in get("dec", "64,48").split(","))
    if get("arch", "polypnet") == "nanodet":
        import pretrained
        from common import MEAN, STD
        json_path, bin_path = pretrained.fetch()
        return PretrainedPolypNet(pretrained.NanoDetBackbone(json_path, bin_path, MEAN, STD), dec)
    return PolypNet(tuple(int(v) for v in get("width", "32,48,96,160,256").split(",")), dec)
