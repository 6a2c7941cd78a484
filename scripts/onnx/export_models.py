#!/usr/bin/env python3
"""Exports the ONNX test models of crates/onnx with torch.onnx.export and
records, for each, a fixed input and the output onnxruntime computes.

    pip install torch onnx onnxruntime onnxscript
    python3 scripts/onnx/export_models.py crates/onnx/tests/data

Writes `<name>.onnx` and `<name>.json` (`{"input_shape", "input",
"output_shape", "output"}`, float32 values, batch 2) per model, and
`versions.json` (torch, onnx, onnxruntime, onnxscript versions and the
exporter settings). Everything is seeded; no data set is read: the LeNet-like
network is trained here on generated images.

Exporters: the default `torch.onnx.export` (the torch.export-based exporter,
`dynamo=True`, whose optimiser folds BatchNormalization into the convolution
before it), the same with the optimiser's batch-norm fusion rule turned off
(so the file keeps Conv + BatchNormalization), and the TorchScript exporter
(`dynamo=False`: Flatten, GlobalAveragePool and Constant nodes). Identity and
inference-mode Dropout nodes are never emitted by torch (it drops them), so
`dropout_identity` is a TorchScript export of a model in training mode whose
Dropout `training_mode` constant is then set to false, with one Identity node
inserted (onnx.helper): the form other exporters write for inference.
"""

import contextlib
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime
import onnxscript
import onnxscript.rewriter
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")
torch.manual_seed(0)
BATCH = 2


@contextlib.contextmanager
def keep_batchnorm():
    """The default exporter with onnxscript's batch-norm fusion rule removed
    from its optimiser (so Conv + BatchNormalization stay two nodes)."""
    from onnxscript.rewriter.rules.common import _fuse_batchnorm

    saved = onnxscript.rewriter._DEFAULT_REWRITE_RULES
    drop = set(map(id, _fuse_batchnorm.rules))
    onnxscript.rewriter._DEFAULT_REWRITE_RULES = tuple(
        r for r in saved if id(r) not in drop
    )
    try:
        yield
    finally:
        onnxscript.rewriter._DEFAULT_REWRITE_RULES = saved


def export(model, x, path, exporter):
    model.eval()
    kw = dict(input_names=["input"], output_names=["output"])
    if exporter == "dynamo":
        torch.onnx.export(model, (x,), path, dynamo=True, external_data=False, **kw)
    elif exporter == "dynamo-keep-bn":
        with keep_batchnorm():
            torch.onnx.export(model, (x,), path, dynamo=True, external_data=False, **kw)
    elif exporter == "torchscript":
        torch.onnx.export(model, (x,), path, dynamo=False, **kw)
    else:
        raise ValueError(exporter)


def reference(path, x):
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return y


def write_case(out, name, x, y):
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(
            {
                "input_shape": list(x.shape),
                "input": [float(v) for v in x.numpy().astype(np.float32).ravel()],
                "output_shape": list(y.shape),
                "output": [float(v) for v in y.astype(np.float32).ravel()],
            },
            f,
        )


def randomize_bn(model):
    """Non-trivial batch-norm statistics and affine parameters."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model


# ---- one model per op family -------------------------------------------------


class ConvPools(nn.Module):
    """Conv with and without bias, Relu, MaxPool (padded), AveragePool,
    GlobalAveragePool, Flatten, Gemm (TorchScript exporter)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 3, 2, 1)
        x = F.relu(self.conv2(x))
        x = F.avg_pool2d(x, 2, 2)
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        return self.fc(x)


class ConvBn(nn.Module):
    """Conv (no bias) + BatchNormalization (folded), BatchNormalization after
    a Relu (the affine map), Reshape, Gemm + BatchNormalization (1-d), global
    average as ReduceMean."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(8, eps=1e-3)
        self.fc1 = nn.Linear(8 * 2 * 2, 12)
        self.bn3 = nn.BatchNorm1d(12)
        self.fc2 = nn.Linear(12, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn2(F.relu(self.conv2(x)))
        x = F.max_pool2d(x, 2)
        x = x.reshape(-1, 8 * 2 * 2)
        x = F.relu(self.bn3(self.fc1(x)))
        return self.fc2(x)


class MatMulAdd(nn.Module):
    """MatMul + Add, Gemm with transB = 0, alpha and beta."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(10, 7) / 3)
        self.b1 = nn.Parameter(torch.randn(7) / 3)
        self.w2 = nn.Parameter(torch.randn(7, 3) / 3)
        self.b2 = nn.Parameter(torch.randn(3) / 3)

    def forward(self, x):
        x = F.relu(x @ self.w1 + self.b1)
        return torch.addmm(self.b2, x, self.w2, beta=0.5, alpha=2.0)


class DropoutNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.drop(self.fc1(x))))


class Unsupported(nn.Module):
    """Conv then Sigmoid: refused."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(torch.sigmoid(self.conv(x)), 1))


# ---- LeNet-like, trained on generated images ----------------------------------


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def generated_images(n, g):
    """28x28 images of 10 classes: class c is a bar at angle 18c degrees
    through a random point near the centre, plus noise."""
    labels = torch.randint(0, 10, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    imgs = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        t = float(labels[i]) * np.pi / 10
        cy, cx = 14 + torch.randn(2, generator=g) * 2
        d = (xx - cx) * np.sin(t) - (yy - cy) * np.cos(t)
        along = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)).abs()
        imgs[i, 0] = torch.exp(-(d**2) / 2) * (along < 9)
    imgs += 0.1 * torch.randn(imgs.shape, generator=g)
    return imgs, labels


def trained_lenet():
    g = torch.Generator().manual_seed(2)
    model = LeNet()
    x, y = generated_images(2000, g)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for epoch in range(3):
        for i in range(0, len(x), 50):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i : i + 50]), y[i : i + 50])
            loss.backward()
            opt.step()
    xt, yt = generated_images(500, g)
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"lenet: loss {loss.item():.3f}, accuracy on 500 generated test images {acc:.3f}")
    xs, _ = generated_images(BATCH, g)
    return model, xs, acc


# ---- small ResNets -------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, cin, cout, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.option = option
        self.pad = (cout - cin) // 2
        self.shortcut = nn.Sequential()
        if (stride != 1 or cin != cout) and option == "B":
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.option == "A" and self.pad > 0:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        else:
            sc = self.shortcut(x)
        return F.relu(out + sc)


class ResNet(nn.Module):
    def __init__(self, option):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = Block(8, 8, 1, option)
        self.layer2 = Block(8, 16, 2, option)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


# ---- main ----------------------------------------------------------------------


def main(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    cases = []

    def case(name, model, shape, exporter, x=None):
        if x is None:
            x = torch.rand((BATCH,) + shape, generator=g) * 2 - 1
        path = os.path.join(out, name + ".onnx")
        export(model, x, path, exporter)
        y = reference(path, x)
        with torch.no_grad():
            t = model(x).numpy()
        diff = float(np.abs(t - y).max())
        print(f"{name}: {exporter}, output {list(y.shape)}, |torch - onnxruntime| {diff:.2e}")
        write_case(out, name, x, y)
        cases.append({"name": name, "exporter": exporter, "torch_vs_onnxruntime": diff})

    case("conv_pools", ConvPools(), (3, 12, 12), "torchscript")
    case("conv_bn", randomize_bn(ConvBn()), (3, 8, 8), "dynamo-keep-bn")
    case("matmul_add", MatMulAdd(), (10,), "dynamo")
    lenet, xs, acc = trained_lenet()
    case("lenet", lenet, None, "dynamo", x=xs)
    case("resnet_b", randomize_bn(ResNet("B")), (3, 16, 16), "dynamo-keep-bn")
    case("resnet_a", randomize_bn(ResNet("A")), (3, 16, 16), "dynamo")
    case("unsupported", Unsupported(), (1, 6, 6), "dynamo")

    # Dropout: TorchScript export in training mode, then the training_mode
    # constant set to false and an Identity node inserted after the Relu.
    net = DropoutNet()
    x = torch.rand((BATCH, 6), generator=g) * 2 - 1
    train_path = os.path.join(out, "dropout_train.onnx")
    net.train()
    torch.onnx.export(
        net, (x,), train_path, dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
        input_names=["input"], output_names=["output"],
    )
    m = onnx.load(train_path)
    drop = next(n for n in m.graph.node if n.op_type == "Dropout")
    for n in m.graph.node:
        if n.op_type == "Constant" and n.output[0] == drop.input[2]:
            n.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.array(False), ""))
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    inner = relu.output[0] + "_identity"
    for n in m.graph.node:
        n.input[:] = [inner if i == relu.output[0] else i for i in n.input]
    at = list(m.graph.node).index(relu) + 1
    m.graph.node.insert(at, onnx.helper.make_node("Identity", [relu.output[0]], [inner], name="/Identity"))
    onnx.checker.check_model(m)
    path = os.path.join(out, "dropout_identity.onnx")
    onnx.save(m, path)
    net.eval()
    y = reference(path, x)
    with torch.no_grad():
        diff = float(np.abs(net(x).numpy() - y).max())
    print(f"dropout_identity: edited torchscript export, |torch - onnxruntime| {diff:.2e}")
    write_case(out, "dropout_identity", x, y)
    cases.append({"name": "dropout_identity", "exporter": "torchscript, edited", "torch_vs_onnxruntime": diff})
    cases.append({"name": "dropout_train", "exporter": "torchscript (training mode)", "torch_vs_onnxruntime": None})

    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
                "onnxscript": onnxscript.__version__,
                "numpy": np.__version__,
                "lenet_accuracy_generated": acc,
                "command": "python3 scripts/onnx/export_models.py crates/onnx/tests/data",
                "cases": cases,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/onnx/tests/data")
