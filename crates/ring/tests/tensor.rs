//! Ring tensors: elementwise ops, matmul against the naive triple loop,
//! convolution (im2col + matmul) against the direct 7-loop convolution,
//! col2im as the adjoint of im2col, and shape errors. Generic over the ring,
//! instantiated for `Z_2^32` and `Z_2^64`.

use ariann_ring::{
    Conv2dShape, MATMUL_PAR_THRESHOLD, Ring, RingError, RingTensor, col2im, conv2d,
    conv2d_grad_input, conv2d_grad_weight, im2col, reconstruct, reference,
};
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Wrapping inner product of two tensors' elements.
fn dot<R: Ring>(a: &RingTensor<R>, b: &RingTensor<R>) -> R {
    assert_eq!(a.shape(), b.shape());
    a.as_slice()
        .iter()
        .zip(b.as_slice())
        .fold(R::ZERO, |acc, (&x, &y)| acc.wadd(x.wmul(y)))
}

fn elementwise<R: Ring>() {
    let mut g = rng(1);
    for shape in [
        vec![],
        vec![0],
        vec![7],
        vec![3, 5],
        vec![2, 3, 4],
        vec![300, 300],
    ] {
        let a = RingTensor::<R>::random(&shape, &mut g);
        let b = RingTensor::<R>::random(&shape, &mut g);
        let c = R::random(&mut g);
        let k = g.random_range(0..R::BITS);
        let per = |t: &RingTensor<R>, f: &dyn Fn(usize) -> R| {
            assert_eq!(t.shape(), &shape[..]);
            for i in 0..t.len() {
                assert_eq!(t.as_slice()[i], f(i), "index {i} of {shape:?}");
            }
        };
        let (x, y) = (a.as_slice(), b.as_slice());
        per(&a.add(&b).expect("same shape"), &|i| x[i].wadd(y[i]));
        per(&a.sub(&b).expect("same shape"), &|i| x[i].wsub(y[i]));
        per(&a.mul_elem(&b).expect("same shape"), &|i| x[i].wmul(y[i]));
        per(&a.neg(), &|i| x[i].wneg());
        per(&a.scale(c), &|i| x[i].wmul(c));
        per(&a.add_scalar(c), &|i| x[i].wadd(c));
        per(&a.sar(k), &|i| x[i].sar(k));
        per(&a.map(|v| v.wmul(v)), &|i| x[i].wmul(x[i]));
        let mut s = a.clone();
        s.add_assign(&b).expect("same shape");
        assert_eq!(s, a.add(&b).expect("same shape"));
        s.sub_assign(&b).expect("same shape");
        assert_eq!(s, a);
        assert_eq!(a.len(), shape.iter().product::<usize>());
        assert_eq!(a.is_empty(), shape.contains(&0));
        assert_eq!(a.to_vec(), x.to_vec());
        assert_eq!(a.view().shape(), &shape[..]);
        assert_eq!(RingTensor::from_array(a.view().to_owned()), a);
        assert_eq!(
            RingTensor::from_vec(&shape, a.to_vec()).expect("same length"),
            a
        );
    }
    let mut t = RingTensor::<R>::zeros(&[2, 3]);
    t.as_mut_slice()[4] = R::ONE;
    assert_eq!(t.view()[[1, 1].as_slice()], R::ONE);
    let r = t.reshape(&[3, 2]).expect("6 elements");
    assert_eq!(r.shape(), &[3, 2]);
    assert_eq!(r.as_slice(), t.as_slice());
    assert_eq!(t.reshape(&[6]).expect("6 elements").shape(), &[6]);
}

fn check_matmul<R: Ring>(m: usize, k: usize, n: usize, g: &mut ChaCha8Rng) {
    let a = RingTensor::<R>::random(&[m, k], g);
    let b = RingTensor::<R>::random(&[k, n], g);
    let fast = a.matmul(&b).expect("compatible shapes");
    let slow = reference::matmul(&a, &b).expect("compatible shapes");
    assert_eq!(fast.shape(), &[m, n]);
    assert!(fast == slow, "matmul {m}x{k}x{n}");
    // (AB)^T = B^T A^T exercises transpose2d too.
    let bt_at = b
        .transpose2d()
        .expect("2-D")
        .matmul(&a.transpose2d().expect("2-D"))
        .expect("compatible shapes");
    assert!(
        fast.transpose2d().expect("2-D") == bt_at,
        "transpose {m}x{k}x{n}"
    );
}

fn matmul_matches_reference<R: Ring>() {
    let mut g = rng(2);
    // Edge shapes: vectors, outer/inner products, non-square, empty.
    for (m, k, n) in [
        (1, 1, 1),
        (1, 17, 1),
        (1, 33, 5),
        (9, 1, 1),
        (9, 1, 7),
        (40, 1, 40),
        (3, 5, 7),
        (7, 5, 3),
        (0, 4, 3),
        (3, 0, 4),
        (3, 4, 0),
        (130, 129, 3),
        (17, 300, 9),
    ] {
        check_matmul::<R>(m, k, n, &mut g);
    }
    for _ in 0..20 {
        let (m, k, n) = (
            g.random_range(1..50),
            g.random_range(1..50),
            g.random_range(1..50),
        );
        check_matmul::<R>(m, k, n, &mut g);
    }
    // Above the rayon threshold: parallel over row blocks (many rows, tile
    // edges in every dimension), and over column panels (few rows).
    for (m, k, n) in [(100, 150, 270), (3, 200, 700)] {
        assert!(m * k * n >= MATMUL_PAR_THRESHOLD);
        check_matmul::<R>(m, k, n, &mut g);
    }
}

fn conv_matches_reference<R: Ring>() {
    let mut g = rng(3);
    let mut checked = 0;
    for stride in [1, 2] {
        for pad in [0, 1, 2] {
            for k in [1, 3, 5] {
                for _ in 0..2 {
                    let s = Conv2dShape {
                        n: g.random_range(1..3),
                        c: g.random_range(1..4),
                        h: g.random_range(k.max(1)..k + 6),
                        w: g.random_range(k..k + 6),
                        oc: g.random_range(1..4),
                        kh: k,
                        kw: k,
                        stride,
                        pad,
                    };
                    check_conv::<R>(&s, &mut g);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 36);
    // Non-square kernel and input, kernel bigger than the input but not the
    // padded input.
    for s in [
        Conv2dShape {
            n: 2,
            c: 2,
            h: 4,
            w: 7,
            oc: 3,
            kh: 3,
            kw: 1,
            stride: 1,
            pad: 1,
        },
        Conv2dShape {
            n: 1,
            c: 1,
            h: 2,
            w: 2,
            oc: 2,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
        },
        Conv2dShape {
            n: 1,
            c: 3,
            h: 3,
            w: 3,
            oc: 1,
            kh: 5,
            kw: 5,
            stride: 2,
            pad: 2,
        },
    ] {
        check_conv::<R>(&s, &mut g);
    }
    // Large enough for the parallel im2col / col2im paths.
    let s = Conv2dShape {
        n: 4,
        c: 8,
        h: 16,
        w: 16,
        oc: 8,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    check_conv::<R>(&s, &mut g);
}

fn check_conv<R: Ring>(s: &Conv2dShape, g: &mut ChaCha8Rng) {
    let x = RingTensor::<R>::random(&s.input_shape(), g);
    let w = RingTensor::<R>::random(&s.weight_shape(), g);
    let fast = conv2d(&x, &w, s).expect("valid geometry");
    let slow = reference::conv2d(&x, &w, s).expect("valid geometry");
    assert_eq!(fast.shape(), &s.output_shape().expect("valid geometry"));
    assert!(fast == slow, "conv2d {s:?}");
    // The adjoint identity on the same geometry.
    check_adjoint::<R>(s, g);
    check_grads::<R>(s, &x, &w, g);
}

/// The input and weight gradients are the adjoints of the direct
/// convolution in each argument: `<conv(x, w), dz> = <x, dX(dz, w)> =
/// <w, dW(x, dz)>`, checked against the 7-loop reference.
fn check_grads<R: Ring>(s: &Conv2dShape, x: &RingTensor<R>, w: &RingTensor<R>, g: &mut ChaCha8Rng) {
    let out = s.output_shape().expect("valid geometry");
    let dz = RingTensor::<R>::random(&out, g);
    let y = reference::conv2d(x, w, s).expect("valid geometry");
    let dx = conv2d_grad_input(&dz, w, s).expect("valid geometry");
    let dw = conv2d_grad_weight(x, &dz, s).expect("valid geometry");
    assert_eq!(dx.shape(), &s.input_shape());
    assert_eq!(dw.shape(), &s.weight_shape());
    assert_eq!(dot(&y, &dz), dot(x, &dx), "input gradient {s:?}");
    assert_eq!(dot(&y, &dz), dot(w, &dw), "weight gradient {s:?}");
    // Each coordinate, not only the inner products: the gradient with
    // respect to one weight is the convolution with that one-hot weight.
    for i in [0, s.weight_shape().iter().product::<usize>() - 1] {
        let mut e = vec![R::ZERO; w.len()];
        e[i] = R::ONE;
        let ew = RingTensor::from_vec(&s.weight_shape(), e).expect("shape");
        let yi = reference::conv2d(x, &ew, s).expect("valid geometry");
        assert_eq!(
            dot(&yi, &dz),
            dw.as_slice()[i],
            "weight gradient entry {i} {s:?}"
        );
    }
}

fn check_adjoint<R: Ring>(s: &Conv2dShape, g: &mut ChaCha8Rng) {
    let x = RingTensor::<R>::random(&s.input_shape(), g);
    let cols = im2col(&x, s).expect("valid geometry");
    let (oh, ow) = s.out_hw().expect("valid geometry");
    assert_eq!(cols.shape(), &[s.n * oh * ow, s.c * s.kh * s.kw]);
    let y = RingTensor::<R>::random(cols.shape(), g);
    let back = col2im(&y, s).expect("valid geometry");
    assert_eq!(back.shape(), &s.input_shape());
    assert_eq!(dot(&cols, &y), dot(&x, &back), "adjoint {s:?}");
}

fn adjoint_on_random_geometries<R: Ring>() {
    let mut g = rng(4);
    for _ in 0..40 {
        let k = g.random_range(1..6);
        let s = Conv2dShape {
            n: g.random_range(1..3),
            c: g.random_range(1..4),
            h: g.random_range(1..9),
            w: g.random_range(1..9),
            oc: 1,
            kh: k,
            kw: g.random_range(1..6),
            stride: g.random_range(1..4),
            pad: g.random_range(0..3),
        };
        if s.out_hw().is_ok() {
            check_adjoint::<R>(&s, &mut g);
        }
    }
}

fn im2col_known_answer<R: Ring>() {
    // 1 image, 1 channel, 3x3 input 1..9, 2x2 kernel, stride 1, pad 0.
    let x = RingTensor::<R>::from_vec(&[1, 1, 3, 3], (1..=9).map(R::from_u64).collect())
        .expect("9 elements");
    let s = Conv2dShape {
        n: 1,
        c: 1,
        h: 3,
        w: 3,
        oc: 1,
        kh: 2,
        kw: 2,
        stride: 1,
        pad: 0,
    };
    let cols = im2col(&x, &s).expect("valid geometry");
    let want: Vec<R> = [1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9]
        .into_iter()
        .map(R::from_u64)
        .collect();
    assert_eq!(cols.shape(), &[4, 4]);
    assert_eq!(cols.to_vec(), want);
    // col2im of all-ones counts how many windows cover each pixel.
    let ones = RingTensor::<R>::from_vec(&[4, 4], vec![R::ONE; 16]).expect("16 elements");
    let counts: Vec<u64> = col2im(&ones, &s)
        .expect("valid geometry")
        .as_slice()
        .iter()
        .map(|v| v.to_u64())
        .collect();
    assert_eq!(counts, vec![1, 2, 1, 2, 4, 2, 1, 2, 1]);
    // Padding reads zeros: 1x1 input, 3x3 kernel, pad 1 -> one window with
    // the value in the middle.
    let x = RingTensor::<R>::from_vec(&[1, 1, 1, 1], vec![R::from_u64(5)]).expect("1 element");
    let s = Conv2dShape {
        n: 1,
        c: 1,
        h: 1,
        w: 1,
        oc: 1,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    let mut want = vec![R::ZERO; 9];
    want[4] = R::from_u64(5);
    assert_eq!(im2col(&x, &s).expect("valid geometry").to_vec(), want);
}

fn shape_errors<R: Ring>() {
    let mut g = rng(5);
    let a = RingTensor::<R>::random(&[2, 3], &mut g);
    let b = RingTensor::<R>::random(&[3, 2], &mut g);
    let v = RingTensor::<R>::random(&[6], &mut g);
    let mismatch = RingError::ShapeMismatch {
        expected: vec![2, 3],
        got: vec![3, 2],
    };
    assert_eq!(a.add(&b), Err(mismatch.clone()));
    assert_eq!(a.sub(&b), Err(mismatch.clone()));
    assert_eq!(a.mul_elem(&b), Err(mismatch.clone()));
    assert_eq!(reconstruct(&a, &b), Err(mismatch.clone()));
    let mut c = a.clone();
    assert_eq!(c.add_assign(&b), Err(mismatch.clone()));
    assert_eq!(c.sub_assign(&b), Err(mismatch));
    assert_eq!(c, a, "failed in-place ops leave the tensor unchanged");
    // matmul: inner dimensions, and 2-D only.
    assert_eq!(
        a.matmul(&a),
        Err(RingError::ShapeMismatch {
            expected: vec![3, 3],
            got: vec![2, 3]
        })
    );
    assert!(matches!(a.matmul(&v), Err(RingError::InvalidShape(_))));
    assert!(matches!(v.matmul(&b), Err(RingError::InvalidShape(_))));
    assert!(matches!(v.transpose2d(), Err(RingError::InvalidShape(_))));
    assert!(matches!(
        reference::matmul(&a, &a),
        Err(RingError::ShapeMismatch { .. })
    ));
    // from_vec / reshape.
    assert_eq!(
        RingTensor::<R>::from_vec(&[2, 3], vec![R::ZERO; 5]),
        Err(RingError::ShapeMismatch {
            expected: vec![2, 3],
            got: vec![5]
        })
    );
    assert!(matches!(
        RingTensor::<R>::from_vec(&[usize::MAX, 2], vec![]),
        Err(RingError::InvalidShape(_))
    ));
    assert!(matches!(a.reshape(&[4]), Err(RingError::InvalidShape(_))));
    // Convolution geometry and operand shapes.
    let s = Conv2dShape {
        n: 1,
        c: 2,
        h: 4,
        w: 4,
        oc: 3,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 0,
    };
    assert!(matches!(
        Conv2dShape { stride: 0, ..s }.out_hw(),
        Err(RingError::InvalidShape(_))
    ));
    assert!(matches!(
        Conv2dShape { kh: 5, ..s }.out_hw(),
        Err(RingError::InvalidShape(_))
    ));
    assert!(matches!(
        Conv2dShape { kw: 0, ..s }.out_hw(),
        Err(RingError::InvalidShape(_))
    ));
    assert!(matches!(
        Conv2dShape {
            pad: usize::MAX,
            ..s
        }
        .out_hw(),
        Err(RingError::InvalidShape(_))
    ));
    assert_eq!(Conv2dShape { kh: 5, pad: 1, ..s }.out_hw(), Ok((2, 4)));
    assert_eq!(
        Conv2dShape {
            stride: 2,
            pad: 1,
            ..s
        }
        .output_shape(),
        Ok([1, 3, 2, 2])
    );
    let x = RingTensor::<R>::random(&s.input_shape(), &mut g);
    let w = RingTensor::<R>::random(&s.weight_shape(), &mut g);
    let bad_x = RingTensor::<R>::random(&[1, 2, 4, 5], &mut g);
    assert_eq!(
        im2col(&bad_x, &s),
        Err(RingError::ShapeMismatch {
            expected: vec![1, 2, 4, 4],
            got: vec![1, 2, 4, 5]
        })
    );
    assert!(matches!(
        conv2d(&bad_x, &w, &s),
        Err(RingError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        conv2d(&x, &x, &s),
        Err(RingError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        reference::conv2d(&x, &x, &s),
        Err(RingError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        col2im(&x, &s),
        Err(RingError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        conv2d(&x, &w, &Conv2dShape { kh: 9, ..s }),
        Err(RingError::ShapeMismatch { .. } | RingError::InvalidShape(_))
    ));
}

fn debug_hides_values<R: Ring>() {
    let t = RingTensor::<R>::from_vec(&[2], vec![R::from_u64(123_456_789), R::ONE]).expect("2");
    let s = format!("{t:?}");
    assert!(s.contains("[2]") && !s.contains("123456789"), "{s}");
}

macro_rules! tensor_suite {
    ($m:ident, $r:ty) => {
        mod $m {
            use super::*;

            #[test]
            fn elementwise_ops() {
                elementwise::<$r>();
            }

            #[test]
            fn matmul() {
                matmul_matches_reference::<$r>();
            }

            #[test]
            fn conv2d_im2col() {
                conv_matches_reference::<$r>();
            }

            #[test]
            fn col2im_is_adjoint() {
                adjoint_on_random_geometries::<$r>();
            }

            #[test]
            fn im2col_kat() {
                im2col_known_answer::<$r>();
            }

            #[test]
            fn errors_not_panics() {
                shape_errors::<$r>();
            }

            #[test]
            fn debug() {
                debug_hides_values::<$r>();
            }
        }
    };
}

tensor_suite!(z32, u32);
tensor_suite!(z64, u64);
