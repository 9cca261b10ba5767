use super::*;

/// Naive reference: the input offset of every output element.
fn naive(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let pad = out.len() - shape.len();
    let n: usize = out.iter().product();
    (0..n)
        .map(|mut lin| {
            let mut coords = vec![0; out.len()];
            for d in (0..out.len()).rev() {
                coords[d] = lin % out[d];
                lin /= out[d];
            }
            let mut off = 0;
            for (i, &dim) in shape.iter().enumerate() {
                let c = if dim == 1 { 0 } else { coords[pad + i] };
                off = off * dim + c;
            }
            off
        })
        .collect()
}

fn offsets_via_plan(a: &[usize], b: &[usize], threads: usize) -> (Vec<usize>, Vec<usize>) {
    let out = broadcast_shapes(&[a, b]).unwrap();
    let plan = Plan::<2>::new([a, b], &out).unwrap();
    let n: usize = out.iter().product();
    let ia: Vec<usize> = (0..plan.input_len(0)).collect();
    let ib: Vec<usize> = (0..plan.input_len(1)).collect();
    let mut got = vec![(0usize, 0usize); n];
    let par = Parallel::new(threads).unwrap();
    plan.run(&mut got, &par, &|offs, seg| {
        let sa = plan.src(0, &ia, offs[0], seg.len());
        let sb = plan.src(1, &ib, offs[1], seg.len());
        for (i, o) in seg.iter_mut().enumerate() {
            *o = (sa.get(i), sb.get(i));
        }
    });
    (
        got.iter().map(|p| p.0).collect(),
        got.iter().map(|p| p.1).collect(),
    )
}

#[test]
fn shapes() {
    assert_eq!(
        broadcast_shapes(&[&[2, 1, 4], &[3, 1]]),
        Some(vec![2, 3, 4])
    );
    assert_eq!(broadcast_shapes(&[&[], &[5]]), Some(vec![5]));
    assert_eq!(broadcast_shapes(&[&[0, 3], &[1, 3]]), Some(vec![0, 3]));
    assert_eq!(broadcast_shapes(&[&[2, 3], &[4]]), None);
    assert_eq!(broadcast_shapes(&[&[0], &[2]]), None);
    assert_eq!(
        legacy_broadcast_shape(&[2, 3, 4, 5], &[3, 4], Some(1)).unwrap(),
        vec![1, 3, 4, 1]
    );
    assert_eq!(
        legacy_broadcast_shape(&[2, 3, 4, 5], &[5], None).unwrap(),
        vec![1, 1, 1, 5]
    );
    assert!(legacy_broadcast_shape(&[2, 3], &[3], Some(0)).is_err());
}

#[test]
fn plan_matches_naive_indexing() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[]),
        (&[], &[2, 3, 4]),
        (&[2, 3, 4, 5], &[1, 3, 1, 1]),
        (&[4, 5], &[5]),
        (&[4, 5], &[4, 1]),
        (&[4, 1], &[1, 5]),
        (&[1, 4, 1, 6], &[3, 1, 5, 6]),
        (&[2, 1, 3, 1, 2], &[1, 4, 3, 5, 1]),
        (&[1, 1], &[1]),
        // More outer dims than the odometer holds: the division path.
        (
            &[2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2],
            &[1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1],
        ),
        (&[3, 0, 2], &[1, 2]),
    ];
    for &(a, b) in cases {
        let out = broadcast_shapes(&[a, b]).unwrap();
        let (ga, gb) = offsets_via_plan(a, b, 1);
        assert_eq!(ga, naive(a, &out), "{a:?} {b:?}");
        assert_eq!(gb, naive(b, &out), "{a:?} {b:?}");
    }
}

#[test]
fn threaded_split_matches_naive() {
    // Big enough to be split, with rows that straddle chunk borders.
    for (a, b) in [
        (vec![3, 7, 4099], vec![7, 1]),
        (vec![1 << 17], vec![1]),
        (vec![5, 1, 9000], vec![1, 3, 9000]),
    ] {
        let out = broadcast_shapes(&[&a, &b]).unwrap();
        let (ga, gb) = offsets_via_plan(&a, &b, 3);
        assert_eq!(ga, naive(&a, &out));
        assert_eq!(gb, naive(&b, &out));
    }
}

#[test]
fn patterns_collapse() {
    let p = Plan::<2>::new([&[2, 3, 4], &[2, 3, 4]], &[2, 3, 4]).unwrap();
    assert_eq!((p.pattern(), p.inner), ("same", 24));
    let p = Plan::<2>::new([&[2, 3, 4], &[]], &[2, 3, 4]).unwrap();
    assert_eq!((p.pattern(), p.inner, p.inner_step), ("flat", 24, [1, 0]));
    // Per-channel: rows of H*W against one value per channel.
    let p = Plan::<2>::new([&[2, 8, 5, 5], &[1, 8, 1, 1]], &[2, 8, 5, 5]).unwrap();
    assert_eq!((p.pattern(), p.inner, p.inner_step), ("bcast", 25, [1, 0]));
    assert_eq!(p.outer, vec![(8, [25, 1]), (2, [200, 0])]);
    // Row vector: rows of 5 against one shared slice.
    let p = Plan::<2>::new([&[4, 5], &[5]], &[4, 5]).unwrap();
    assert_eq!((p.inner, p.inner_step), (5, [1, 1]));
    assert_eq!(p.outer, vec![(4, [5, 0])]);
    assert!(Plan::<2>::new([&[2, 3], &[4]], &[2, 3]).is_err());
}
