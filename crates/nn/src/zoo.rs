//! The models of ARIANN's zoo that this crate defines so far.
use crate::model::{Layer, Model};

fn linear(name: &str, inp: usize, out: usize) -> Layer {
    Layer::linear(name, inp, out)
}

fn conv(name: &str, c: usize, oc: usize, k: usize, stride: usize, pad: usize) -> Layer {
    Layer::conv2d(name, c, oc, k, stride, pad)
}

fn bn(name: &str, c: usize) -> Layer {
    Layer::batch_norm(name, c)
}

/// torchvision's ResNet18 (state-dict names `conv1`, `bn1`,
/// `layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}`,
/// `fc`) on `hw x hw` RGB inputs (`hw` a multiple of 32; 224 for
/// ImageNet), `classes` outputs, ending with `AdaptiveAvgPool2d(1)`. Convolutions have bias
/// tensors here (zero in torchvision, which has `bias=False`): fold the
/// batch-norms ([`Model::fold_batchnorm`]) to run it in fixed point or
/// privately.
pub fn resnet18(hw: usize, classes: usize) -> Model {
    let mut layers = vec![
        conv("conv1", 3, 64, 7, 2, 3),
        bn("bn1", 64),
        Layer::Relu,
        Layer::max_pool(3, 2, 1),
    ];
    let mut c = 64;
    for (i, oc) in [64usize, 128, 256, 512].into_iter().enumerate() {
        for b in 0..2 {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            let p = format!("layer{}.{b}", i + 1);
            let body = vec![
                conv(&format!("{p}.conv1"), c, oc, 3, stride, 1),
                bn(&format!("{p}.bn1"), oc),
                Layer::Relu,
                conv(&format!("{p}.conv2"), oc, oc, 3, 1, 1),
                bn(&format!("{p}.bn2"), oc),
            ];
            let shortcut = if stride != 1 || c != oc {
                vec![
                    conv(&format!("{p}.downsample.0"), c, oc, 1, stride, 0),
                    bn(&format!("{p}.downsample.1"), oc),
                ]
            } else {
                vec![]
            };
            layers.push(Layer::residual(body, shortcut));
            layers.push(Layer::Relu);
            c = oc;
        }
    }
    layers.push(Layer::adaptive_avg_pool(1));
    layers.push(Layer::Flatten);
    layers.push(linear("fc", 512, classes));
    Model {
        name: format!("ResNet18 {hw}x{hw}"),
        input: vec![3, hw, hw],
        layers,
    }
}

/// The CIFAR-10 ResNet-20 of He et al. (2016, section 4.2): a 3x3
/// convolution to 16 channels, three stages of three basic blocks (16, 32,
/// 64 channels; the first block of stages 2 and 3 has stride 2), global
/// average pooling and a 64x10 linear layer; 0.27 M parameters. PyTorch's
/// usual state-dict names (`conv1`, `bn1`, `layer{1..3}.{0..2}.{conv1,bn1,
/// conv2,bn2}`, `linear`). The shortcuts that change shape are the paper's
/// "option A": subsample by 2 and zero-pad the channels
/// ([`Layer::subsample_pad`], free on shares), as in the widely used
/// PyTorch CIFAR ResNets. As for [`resnet18`], convolutions have bias
/// tensors (zero in PyTorch's `bias=False`): fold the batch-norms.
pub fn resnet20() -> Model {
    let mut layers = vec![conv("conv1", 3, 16, 3, 1, 1), bn("bn1", 16), Layer::Relu];
    let mut c = 16;
    for (i, oc) in [16usize, 32, 64].into_iter().enumerate() {
        for b in 0..3 {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            let p = format!("layer{}.{b}", i + 1);
            let body = vec![
                conv(&format!("{p}.conv1"), c, oc, 3, stride, 1),
                bn(&format!("{p}.bn1"), oc),
                Layer::Relu,
                conv(&format!("{p}.conv2"), oc, oc, 3, 1, 1),
                bn(&format!("{p}.bn2"), oc),
            ];
            let shortcut = if stride != 1 || c != oc {
                vec![Layer::subsample_pad(stride, (oc - c) / 2)]
            } else {
                vec![]
            };
            layers.push(Layer::residual(body, shortcut));
            layers.push(Layer::Relu);
            c = oc;
        }
    }
    layers.push(Layer::adaptive_avg_pool(1));
    layers.push(Layer::Flatten);
    layers.push(linear("linear", 64, 10));
    Model {
        name: "ResNet-20 CIFAR-10".into(),
        input: vec![3, 32, 32],
        layers,
    }
}

/// Network-1 (SecureML): 784-128-128-10 with ReLUs.
pub fn network1() -> Model {
    Model {
        name: "Network-1".into(),
        input: vec![784],
        layers: vec![
            linear("fc1", 784, 128),
            Layer::Relu,
            linear("fc2", 128, 128),
            Layer::Relu,
            linear("fc3", 128, 10),
        ],
    }
}

/// LeNet5 as trained by advertorch (`mnist_lenet5_clntrained`): 3x3
/// convolutions with 32 and 64 channels (padding 1), 2x2 max-pools, a
/// 3136-200-10 head; parameter names `conv1`, `conv2`, `linear1`, `linear2`.
pub fn lenet5_advertorch() -> Model {
    Model {
        name: "LeNet5 (advertorch)".into(),
        input: vec![1, 28, 28],
        layers: vec![
            conv("conv1", 1, 32, 3, 1, 1),
            Layer::Relu,
            Layer::max_pool(2, 2, 0),
            conv("conv2", 32, 64, 3, 1, 1),
            Layer::Relu,
            Layer::max_pool(2, 2, 0),
            Layer::Flatten,
            linear("linear1", 3136, 200),
            Layer::Relu,
            linear("linear2", 200, 10),
        ],
    }
}

/// Network-2 (MiniONN): two 5x5 convolutions with max-pools, two linear
/// layers, as in Falcon's MNIST MiniONN (final ReLU included).
pub fn network2() -> Model {
    Model {
        name: "Network-2".into(),
        input: vec![1, 28, 28],
        layers: vec![
            conv("conv1", 1, 16, 5, 1, 0),
            Layer::Relu,
            Layer::max_pool(2, 2, 0),
            conv("conv2", 16, 16, 5, 1, 0),
            Layer::Relu,
            Layer::max_pool(2, 2, 0),
            Layer::Flatten,
            linear("fc1", 256, 100),
            Layer::Relu,
            linear("fc2", 100, 10),
            Layer::Relu,
        ],
    }
}

fn pool(k: usize, stride: usize) -> Layer {
    Layer::max_pool(k, stride, 0)
}

/// Falcon's "Sarda" (Chameleon) MNIST network: a 2x2 stride-2
/// convolution with 5 channels, then 980-100-10.
pub fn sarda() -> Model {
    Model {
        name: "Sarda".into(),
        input: vec![1, 28, 28],
        layers: vec![
            conv("conv1", 1, 5, 2, 2, 0),
            Layer::Relu,
            Layer::Flatten,
            linear("fc1", 980, 100),
            Layer::Relu,
            linear("fc2", 100, 10),
        ],
    }
}

/// LeNet as in Falcon/ARIANN: 5x5 convolutions with 20 and 50 channels,
/// 2x2 max-pools, 800-500-10 and a final ReLU (Falcon's trained model
/// and C++ configuration have it). Names `conv1`, `conv2`, `fc1`, `fc2`.
pub fn lenet() -> Model {
    Model {
        name: "LeNet".into(),
        input: vec![1, 28, 28],
        layers: vec![
            conv("conv1", 1, 20, 5, 1, 0),
            Layer::Relu,
            pool(2, 2),
            conv("conv2", 20, 50, 5, 1, 0),
            Layer::Relu,
            pool(2, 2),
            Layer::Flatten,
            linear("fc1", 800, 500),
            Layer::Relu,
            linear("fc2", 500, 10),
            Layer::Relu,
        ],
    }
}

/// Falcon's AlexNet for CIFAR-10 (the version with batch-norms, which
/// ARIANN kept): images zero-padded to 33x33 as in Falcon,
/// conv 11x11/4 (pad 9) 96 ch, max-pool 3/2, ReLU, BN, conv 5x5 (pad 1)
/// 256 ch, max-pool 3/2, ReLU, BN, three 3x3 convs (384, 384, 256),
/// 256-256-10 and a final ReLU. Written in PyTorch order (ReLU before
/// max-pool); [`Model::permute_relu_maxpool`] gives Falcon's order. The
/// batch-norms follow a ReLU, so they cannot be folded into a
/// convolution: they run as a private per-channel affine map.
/// State-dict names `features.N`, `classifier.N`.
pub fn alexnet_cifar10() -> Model {
    Model {
        name: "AlexNet".into(),
        input: vec![3, 33, 33],
        layers: vec![
            conv("features.0", 3, 96, 11, 4, 9),
            Layer::Relu,
            pool(3, 2),
            bn("features.3", 96),
            conv("features.4", 96, 256, 5, 1, 1),
            Layer::Relu,
            pool(3, 2),
            bn("features.7", 256),
            conv("features.8", 256, 384, 3, 1, 1),
            Layer::Relu,
            conv("features.10", 384, 384, 3, 1, 1),
            Layer::Relu,
            conv("features.12", 384, 256, 3, 1, 1),
            Layer::Relu,
            Layer::Flatten,
            linear("classifier.0", 256, 256),
            Layer::Relu,
            linear("classifier.2", 256, 256),
            Layer::Relu,
            linear("classifier.4", 256, 10),
            Layer::Relu,
        ],
    }
}

/// AlexNet for 64x64 Tiny ImageNet (ARIANN Figure 5): torchvision's
/// AlexNet features, no batch-norm, classifier 256-4096-4096-200.
pub fn alexnet_tiny() -> Model {
    Model {
        name: "AlexNet".into(),
        input: vec![3, 64, 64],
        layers: vec![
            conv("features.0", 3, 64, 11, 4, 2),
            Layer::Relu,
            pool(3, 2),
            conv("features.3", 64, 192, 5, 1, 2),
            Layer::Relu,
            pool(3, 2),
            conv("features.6", 192, 384, 3, 1, 1),
            Layer::Relu,
            conv("features.8", 384, 256, 3, 1, 1),
            Layer::Relu,
            conv("features.10", 256, 256, 3, 1, 1),
            Layer::Relu,
            pool(3, 2),
            Layer::Flatten,
            linear("classifier.0", 256, 4096),
            Layer::Relu,
            linear("classifier.2", 4096, 4096),
            Layer::Relu,
            linear("classifier.4", 4096, 200),
        ],
    }
}

/// VGG16 as Falcon/ARIANN adapt it: the 13 3x3 convolutions of VGG16
/// (torchvision names `features.N`) on `hw x hw` inputs, then
/// `fc, fc, classes` with a ReLU after each (Falcon's configuration).
/// CIFAR-10: `vgg16(32, 4096, 10)` (Falcon's code has 1000 outputs; 10
/// is the number of classes); 64x64 Tiny ImageNet: `vgg16(64, 2048, 200)`.
/// Classifier names follow torchvision (`classifier.0/3/6`).
pub fn vgg16(hw: usize, fc: usize, classes: usize) -> Model {
    let mut layers = Vec::new();
    let mut c = 3;
    let mut i = 0;
    for (n, oc) in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)] {
        for _ in 0..n {
            layers.push(conv(&format!("features.{i}"), c, oc, 3, 1, 1));
            layers.push(Layer::Relu);
            c = oc;
            i += 2;
        }
        layers.push(pool(2, 2));
        i += 1;
    }
    let flat = 512 * (hw / 32) * (hw / 32);
    layers.extend([
        Layer::Flatten,
        linear("classifier.0", flat, fc),
        Layer::Relu,
        linear("classifier.3", fc, fc),
        Layer::Relu,
        linear("classifier.6", fc, classes),
        Layer::Relu,
    ]);
    Model {
        name: "VGG16".into(),
        input: vec![3, hw, hw],
        layers,
    }
}

/// The AlexNet-like CIFAR-10 network of the max-pool note (Figure 3):
/// five 3x3 convolutions (64, 96, 96, 64, 64 ch), max-pools 2, 2 and 3/2,
/// 1024-128-256-10. Names are the `nn.Sequential` indices (`0`, `3`, ...).
pub fn alexnet_note() -> Model {
    Model {
        name: "AlexNet-like (note)".into(),
        input: vec![3, 32, 32],
        layers: vec![
            conv("0", 3, 64, 3, 1, 2),
            Layer::Relu,
            pool(2, 2),
            conv("3", 64, 96, 3, 1, 2),
            Layer::Relu,
            pool(2, 2),
            conv("6", 96, 96, 3, 1, 1),
            Layer::Relu,
            conv("8", 96, 64, 3, 1, 1),
            Layer::Relu,
            conv("10", 64, 64, 3, 1, 1),
            Layer::Relu,
            pool(3, 2),
            Layer::Flatten,
            linear("14", 1024, 128),
            Layer::Relu,
            linear("16", 128, 256),
            Layer::Relu,
            linear("18", 256, 10),
        ],
    }
}

/// A zoo model by its short name, with its dataset and ARIANN Table 2's
/// batch size: `network1`, `network2`, `sarda`, `lenet`, `lenet5`
/// (advertorch), `alexnet` (CIFAR-10), `alexnet_64`, `alexnet_note`,
/// `vgg16` (CIFAR-10), `vgg16_64`, `resnet18` (224x224), `resnet18_64`,
/// and `resnet20` (CIFAR-10, batch 32; not in ARIANN's table).
pub fn by_name(name: &str) -> Option<(Model, &'static str, usize)> {
    Some(match name {
        "network1" => (network1(), "MNIST", 128),
        "network2" => (network2(), "MNIST", 128),
        "sarda" => (sarda(), "MNIST", 128),
        "lenet" => (lenet(), "MNIST", 128),
        "lenet5" => (lenet5_advertorch(), "MNIST", 128),
        "alexnet" => (alexnet_cifar10(), "CIFAR-10", 128),
        "alexnet_64" => (alexnet_tiny(), "64x64 Tiny ImageNet", 128),
        "alexnet_note" => (alexnet_note(), "CIFAR-10", 128),
        "vgg16" => (vgg16(32, 4096, 10), "CIFAR-10", 32),
        "vgg16_64" => (vgg16(64, 2048, 200), "64x64 Tiny ImageNet", 16),
        "resnet18" => (resnet18(224, 1000), "224x224 ImageNet", 4),
        "resnet18_64" => (resnet18(64, 200), "64x64 Tiny ImageNet", 16),
        "resnet20" => (resnet20(), "CIFAR-10", 32),
        _ => return None,
    })
}

/// The names [`by_name`] knows, in ARIANN Table 2's order (then ResNet-20).
pub const NAMES: [&str; 13] = [
    "network1",
    "network2",
    "sarda",
    "lenet",
    "lenet5",
    "alexnet",
    "alexnet_64",
    "alexnet_note",
    "vgg16",
    "vgg16_64",
    "resnet18",
    "resnet18_64",
    "resnet20",
];
