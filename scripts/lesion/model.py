"""Small CNN tile classifier for colon lesions (6 EBHI classes) + uint8-NHWC export wrapper (softmax in graph)."""
import torch
import torch.nn as nn

from common import MEAN, STD


def cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LesionNet(nn.Module):
    def __init__(self, w=(24, 48, 96, 160, 224), n_classes=6, drop=0.3):
        super().__init__()
        layers, c = [], 3
        for i, wi in enumerate(w):
            layers += [cbr(c, wi, 2), cbr(wi, wi)]
            c = wi
        self.features = nn.Sequential(*layers)                      # /32
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        f = self.features(x).mean((2, 3))
        return self.fc(self.drop(f))


class ExportWrapper(nn.Module):
    """uint8 NHWC RGB [N,S,S,3] -> class probabilities [N,6] (softmax); normalisation inside the graph."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, image):
        x = (image.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return torch.softmax(self.net(x), 1)
