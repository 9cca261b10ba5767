use alloc::vec;
use alloc::vec::Vec;

use super::*;

/// Deterministic pseudo-random values in [-1, 1).
pub(crate) fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A task runner on real threads, to exercise the parallel split.
pub(crate) struct Threads(pub usize);

// SAFETY: every index is handed to exactly one spawned thread, and the scope
// joins them all before returning.
unsafe impl Exec for Threads {
    fn max_tasks(&self) -> usize {
        self.0
    }
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|s| {
            for i in 0..n {
                s.spawn(move || f(i));
            }
        });
    }
}

pub(crate) const ACTS: [Activation; 9] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip {
        min: -0.5,
        max: 0.7,
    },
    Activation::LeakyRelu { alpha: 0.1 },
    Activation::Sigmoid,
    Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    Activation::HardSwish,
    Activation::Tanh,
    Activation::Swish { alpha: 1.0 },
];

/// Naive reference in f64.
#[allow(clippy::too_many_arguments)]
fn reference(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c0: &[f32],
    ldc: usize,
    ep: &Epilogue<'_>,
) -> Vec<f32> {
    let mut c = c0.to_vec();
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += a.at(i, p) as f64 * b.at(p, j) as f64;
            }
            let mut v = ep.alpha as f64 * s;
            if ep.accumulate {
                v += c0[i * ldc + j] as f64;
            }
            match ep.bias {
                Bias::PerRow(r) => v += r[i] as f64,
                Bias::PerCol(r) => v += r[j] as f64,
                Bias::None => {}
            }
            c[i * ldc + j] = ep.act.apply(v as f32);
        }
    }
    c
}

fn check(got: &[f32], want: &[f32], k: usize, what: &str) {
    assert_eq!(got.len(), want.len());
    let tol = 1e-5 * (k as f32 + 4.0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// Runs every operand form (strided or pre-packed) on every ISA and task
/// count, against the reference.
#[allow(clippy::too_many_arguments)]
fn run_all(
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    ep: &Epilogue<'_>,
    seed: u64,
) {
    let ad = rand_vec(m * k + 3, seed);
    let bd = rand_vec(k * n + 5, seed + 1);
    // Column strides > 1 exercise the generic packing path.
    let a = if trans_a {
        MatRef::new(&ad, k, m, m, 1).unwrap().t()
    } else {
        MatRef::row_major(&ad, m, k).unwrap()
    };
    let b = if trans_b {
        MatRef::new(&bd, n, k, k, 1).unwrap().t()
    } else {
        MatRef::row_major(&bd, k, n).unwrap()
    };
    let ldc = n + 3;
    let c0 = rand_vec(m * ldc, seed + 2);
    let want = reference(m, n, k, &a, &b, &c0, ldc, ep);
    let pa = PackedA::new(a);
    let pb = PackedB::new(b);
    for isa in Isa::available() {
        for tasks in [1, 2, 3] {
            let threads = Threads(tasks);
            let exec: &dyn Exec = if tasks == 1 { &Serial } else { &threads };
            let what = |form: &str| {
                alloc::format!(
                    "{m}x{n}x{k} ta={trans_a} tb={trans_b} {ep:?} {} tasks={tasks} {form}",
                    isa.name()
                )
            };
            let mut scratch = vec![0.0; gemm_scratch_len(m, n, k, false, false, tasks)];
            let mut c = c0.clone();
            gemm(isa, &a, &b, &mut c, ldc, ep, &mut scratch, exec);
            check(&c, &want, k, &what("strided"));
            let mut c2 = c0.clone();
            gemm(isa, &pa, &b, &mut c2, ldc, ep, &mut scratch, exec);
            check(&c2, &want, k, &what("packed A"));
            assert_eq!(c, c2, "packing A at build or run time must agree");
            let mut c3 = c0.clone();
            gemm(isa, &a, &pb, &mut c3, ldc, ep, &mut scratch, exec);
            assert_eq!(c, c3, "packed B differs");
        }
    }
}

#[test]
fn odd_shapes() {
    let dims = [1, 2, 5, 6, 7, 13, 16, 17, 33];
    let mut seed = 0;
    for &m in &dims {
        for &n in &dims {
            for &k in &[1, 3, 8, 19] {
                seed += 1;
                run_all(m, n, k, false, false, &Epilogue::default(), seed);
            }
        }
    }
}

#[test]
fn big_shapes_cross_blocks() {
    // Crosses KC, MC and NC boundaries and splits across tasks.
    run_all(80, 530, 300, false, false, &Epilogue::default(), 7);
    run_all(150, 70, 513, true, true, &Epilogue::default(), 8);
}

#[test]
fn zero_depth_gives_bias() {
    let bias = rand_vec(7, 3);
    let ep = Epilogue::new(Bias::PerRow(&bias), Activation::Relu);
    run_all(7, 9, 0, false, false, &ep, 1);
}

#[test]
fn transposes_and_epilogues() {
    let rb = rand_vec(40, 11);
    let cb = rand_vec(40, 12);
    for (t, act) in ACTS.iter().enumerate() {
        for (ta, tb) in [(false, true), (true, false), (true, true)] {
            let ep = Epilogue {
                alpha: 0.75,
                accumulate: t % 2 == 0,
                bias: if t % 3 == 0 {
                    Bias::PerRow(&rb)
                } else if t % 3 == 1 {
                    Bias::PerCol(&cb)
                } else {
                    Bias::None
                },
                act: *act,
            };
            run_all(13, 37, 21, ta, tb, &ep, t as u64);
            run_all(40, 19, 260, ta, tb, &ep, 100 + t as u64);
        }
    }
}

#[test]
fn bad_strides_rejected() {
    let d = [0.0; 10];
    assert!(MatRef::new(&d, 3, 4, 4, 1).is_none());
    assert!(MatRef::new(&d, 2, 5, 5, 1).is_some());
    assert!(MatRef::new(&d, 0, 5, 5, 1).is_some());
    assert!(MatRef::new(&d, 2, 2, usize::MAX, 1).is_none());
}

#[test]
fn chunks_cover_everything_once() {
    for tasks in [1, 2, 3, 5] {
        let mut v = vec![0.0f32; 23];
        for_each_chunk_mut(&Threads(tasks), &mut v, 4, &|i, c| {
            for x in c.iter_mut() {
                *x += i as f32 + 1.0;
            }
        });
        let want: Vec<f32> = (0..23).map(|j| (j / 4) as f32 + 1.0).collect();
        assert_eq!(v, want);
    }
}

#[test]
fn chunks_with_scratch_use_private_slots() {
    for tasks in [1, 2, 4] {
        let mut v = vec![0.0f32; 10];
        let mut scratch = vec![0.0f32; 3 * 2];
        for_each_chunk_mut_with_scratch(&Threads(tasks), &mut v, 3, &mut scratch, 2, &|i, c, s| {
            // Each slot is private: write then read back must agree.
            s[0] = i as f32;
            s[1] = 2.0 * i as f32;
            for x in c.iter_mut() {
                *x = s[0] + s[1];
            }
        });
        let want: Vec<f32> = (0..10).map(|j| 3.0 * (j / 3) as f32).collect();
        assert_eq!(v, want);
    }
}

/// Sigmoid, Tanh and Swish run in registers on the x86 SIMD micro-kernels
/// (no pass after the store) and give the same bits as `apply_slice` on
/// the unactivated product: every vmath path is bit-identical.
#[test]
fn exp_epilogues_match_the_slice_pass() {
    let (m, n, k) = (19, 45, 23);
    let (ad, bd) = (rand_vec(m * k, 41), rand_vec(k * n, 42));
    let a = MatRef::row_major(&ad, m, k).unwrap();
    let b = MatRef::row_major(&bd, k, n).unwrap();
    let rb = rand_vec(m, 43);
    let acts = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Swish { alpha: 1.0 },
        Activation::Swish { alpha: 0.6 },
    ];
    for isa in Isa::available() {
        for act in acts {
            assert_eq!(split_act(isa, act).1, !isa.is_avx2(), "{act:?}");
            let mut scratch = vec![0.0; gemm_scratch_len(m, n, k, false, false, 1)];
            // alpha spreads the pre-activations over about [-30, 30].
            let ep = |act| Epilogue {
                alpha: 6.0,
                accumulate: false,
                bias: Bias::PerRow(&rb),
                act,
            };
            let mut fused = vec![0.0; m * n];
            gemm(isa, &a, &b, &mut fused, n, &ep(act), &mut scratch, &Serial);
            let mut plain = vec![0.0; m * n];
            gemm(
                isa,
                &a,
                &b,
                &mut plain,
                n,
                &ep(Activation::None),
                &mut scratch,
                &Serial,
            );
            act.apply_slice(&mut plain);
            assert_eq!(fused, plain, "{act:?} on {}", isa.name());
        }
    }
}
