//! The gate table: every kind of [`GateDesc`](crate::GateDesc) with its
//! number and its name, defined here and nowhere else.
//!
//! The number is the kind byte of the binary encoding of a gate descriptor
//! ([`GateDesc::encode`](crate::GateDesc::encode)), which the key bundle
//! header and the plan hash both use; the name is the `"gate"` value of the
//! JSON plan (serde, checked against this table by a test) and the name
//! error messages use. The numbers are part of the key and plan formats:
//! never reuse or renumber one.
//!
//! | number | name | descriptor |
//! |---|---|---|
//! | 1 | `drelu` | `Drelu { m, k }` |
//! | 2 | `relu` | `Relu { m, k }` |
//! | 3 | `eq_zero` | `EqZero { m, k }` |
//! | 4 | `trunc` | `Trunc { m, f, k }` |
//! | 5 | `triple` | `Triple(Bilinear)`, sub-kind [`MapKind`]: 1 `mul`, 2 `matmul`, 3 `conv2d` |
//! | 6 | `max_pool` | `MaxPool { shape, k }` |
//! | 7 | `argmax` | `Argmax { rows, n, k }` |
//! | 8 | `max_pool_one_hot` | `MaxPoolOneHot { shape, k }` |
//! | 9 | `batch_norm` | `BatchNorm(BatchNormShape)` |

macro_rules! kind_table {
    (
        $(#[$meta:meta])*
        pub enum $Kind:ident {
            $( $(#[$vmeta:meta])* $V:ident = $num:literal, $name:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $Kind {
            $( $(#[$vmeta])* $V = $num, )*
        }

        impl $Kind {
            /// Every kind, in table order.
            pub const ALL: &'static [$Kind] = &[$($Kind::$V),*];

            /// The kind's number (its byte in binary encodings).
            pub const fn number(self) -> u8 {
                self as u8
            }

            /// The kind's name (JSON, error messages).
            pub const fn name(self) -> &'static str {
                match self {
                    $($Kind::$V => $name,)*
                }
            }

            /// The kind numbered `n`, if any.
            pub const fn from_number(n: u8) -> Option<Self> {
                match n {
                    $($num => Some($Kind::$V),)*
                    _ => None,
                }
            }

            /// The kind named `name`, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|k| k.name() == name)
            }
        }

        impl core::fmt::Display for $Kind {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kind_table! {
    /// The kind of a gate: one row of the gate table.
    pub enum GateKind {
        /// DReLU (`[x >= 0]`) on a window.
        Drelu = 1, "drelu";
        /// One-round ReLU on a window.
        Relu = 2, "relu";
        /// Equality with zero on a window.
        EqZero = 3, "eq_zero";
        /// Exact truncation.
        Trunc = 4, "trunc";
        /// A bilinear map from a triple (sub-kind: [`MapKind`]).
        Triple = 5, "triple";
        /// Max-pool in `ceil(log2 k^2)` rounds.
        MaxPool = 6, "max_pool";
        /// One-hot argmax per row.
        Argmax = 7, "argmax";
        /// Max-pool in 3 rounds with its one-hot selection.
        MaxPoolOneHot = 8, "max_pool_one_hot";
        /// Batch normalisation (training forward).
        BatchNorm = 9, "batch_norm";
    }
}

kind_table! {
    /// The kind of a triple's bilinear map ([`Bilinear`](crate::gates::beaver::Bilinear)).
    pub enum MapKind {
        /// Elementwise product.
        Mul = 1, "mul";
        /// Matrix product.
        MatMul = 2, "matmul";
        /// 2-D convolution.
        Conv2d = 3, "conv2d";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn check_unique(numbers: Vec<u8>, names: Vec<&'static str>) {
        let n = numbers.len();
        assert_eq!(numbers.iter().collect::<HashSet<_>>().len(), n);
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), n);
        assert!(!numbers.contains(&0), "0 is never a kind");
    }

    #[test]
    fn numbers_and_names_are_unique_and_round_trip() {
        check_unique(
            GateKind::ALL.iter().map(|k| k.number()).collect(),
            GateKind::ALL.iter().map(|k| k.name()).collect(),
        );
        check_unique(
            MapKind::ALL.iter().map(|k| k.number()).collect(),
            MapKind::ALL.iter().map(|k| k.name()).collect(),
        );
        for &k in GateKind::ALL {
            assert_eq!(GateKind::from_number(k.number()), Some(k));
            assert_eq!(GateKind::from_name(k.name()), Some(k));
        }
        for &k in MapKind::ALL {
            assert_eq!(MapKind::from_number(k.number()), Some(k));
            assert_eq!(MapKind::from_name(k.name()), Some(k));
        }
        assert_eq!(GateKind::from_number(0), None);
        assert_eq!(GateKind::from_number(10), None);
    }

    #[test]
    fn numbers_are_the_format_s() {
        // The numbers are part of the key and plan formats: pinned.
        let pinned = [
            (GateKind::Drelu, 1, "drelu"),
            (GateKind::Relu, 2, "relu"),
            (GateKind::EqZero, 3, "eq_zero"),
            (GateKind::Trunc, 4, "trunc"),
            (GateKind::Triple, 5, "triple"),
            (GateKind::MaxPool, 6, "max_pool"),
            (GateKind::Argmax, 7, "argmax"),
            (GateKind::MaxPoolOneHot, 8, "max_pool_one_hot"),
            (GateKind::BatchNorm, 9, "batch_norm"),
        ];
        assert_eq!(pinned.len(), GateKind::ALL.len());
        for (k, n, name) in pinned {
            assert_eq!((k.number(), k.name()), (n, name));
        }
        let pinned = [
            (MapKind::Mul, 1, "mul"),
            (MapKind::MatMul, 2, "matmul"),
            (MapKind::Conv2d, 3, "conv2d"),
        ];
        assert_eq!(pinned.len(), MapKind::ALL.len());
        for (k, n, name) in pinned {
            assert_eq!((k.number(), k.name()), (n, name));
        }
    }
}
