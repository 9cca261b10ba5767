use super::*;

fn naive(shape: &[usize], strides: &[isize], offset: usize, src: &[u32]) -> Vec<u32> {
    let total: usize = shape.iter().product();
    (0..total)
        .map(|mut i| {
            let mut o = offset as isize;
            for d in (0..shape.len()).rev() {
                o += (i % shape[d]) as isize * strides[d];
                i /= shape[d];
            }
            src[o as usize]
        })
        .collect()
}

#[test]
fn matches_naive_walk() {
    let src: Vec<u32> = (0..400).collect();
    let cases: &[(&[usize], &[isize], usize)] = &[
        (&[4, 5], &[1, 4], 0),          // 2-D transpose
        (&[2, 20, 3], &[60, 1, 20], 0), // NCHW -> NHWC style
        (&[3, 1, 4], &[0, 7, 1], 2),    // broadcast
        (&[5], &[-3], 15),              // negative step
        (&[2, 3, 33], &[99, 33, 1], 0), // fully contiguous
        (&[17, 18], &[1, 17], 0),       // partial tiles
        (&[], &[], 7),                  // scalar
    ];
    for &(shape, strides, offset) in cases {
        let c = StridedCopy::new(4, shape, strides, offset, src.len()).unwrap();
        let total: usize = shape.iter().product();
        let mut dst = vec![0u32; total];
        c.run(
            bytemuck::cast_slice(&src),
            bytemuck::cast_slice_mut(&mut dst),
        );
        assert_eq!(dst, naive(shape, strides, offset, &src), "{shape:?}");
    }
}

#[test]
fn tiled_path_handles_every_element_size() {
    // 19 × 21 covers full tiles and ragged edges.
    let (shape, strides): (&[usize], &[isize]) = (&[19, 21], &[1, 19]);
    let src32: Vec<u32> = (0..19 * 21).collect();
    let want = naive(shape, strides, 0, &src32);
    for elem in [1usize, 2, 4, 8] {
        // Element i is stored as i in its first byte and zeros after, so
        // one expected byte pattern checks every width.
        let mut src = vec![0u8; src32.len() * elem];
        for (i, &v) in src32.iter().enumerate() {
            src[i * elem..i * elem + 2.min(elem)]
                .copy_from_slice(&(v as u16).to_le_bytes()[..2.min(elem)]);
        }
        let c = StridedCopy::new(elem, shape, strides, 0, src32.len()).unwrap();
        assert_eq!(c.kind(), "tiled");
        let mut words = vec![0u64; (want.len() * elem).div_ceil(8)];
        let dst = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..want.len() * elem];
        let mut srcw = vec![0u64; src.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut srcw)[..src.len()].copy_from_slice(&src);
        c.run(&bytemuck::cast_slice::<u64, u8>(&srcw)[..src.len()], dst);
        for (i, &w) in want.iter().enumerate() {
            let mask = if elem == 1 { 0xff } else { 0xffff };
            let got = if elem == 1 {
                u32::from(dst[i])
            } else {
                u32::from(u16::from_le_bytes([dst[i * elem], dst[i * elem + 1]]))
            };
            assert_eq!(got, w & mask, "elem {elem} at {i}");
        }
    }
}

#[test]
fn rejects_out_of_range_plan() {
    assert!(StridedCopy::new(4, &[3], &[-1], 1, 10).is_err());
    assert!(StridedCopy::new(4, &[3], &[5], 0, 10).is_err());
}
