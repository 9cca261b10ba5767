use super::*;
use crate::{DType, ValueInfo};

/// x -> a: Relu -> y -> b: Relu -> z (output), with initializer "w".
fn chain() -> Graph {
    let mut g = Graph {
        inputs: vec![ValueInfo::known("x", DType::F32, &[1])],
        outputs: vec![ValueInfo::known("z", DType::F32, &[1])],
        nodes: vec![
            Node::new("a", "Relu", &["x"], &["y"]),
            Node::new("b", "Relu", &["y"], &["z"]),
        ],
        ..Graph::default()
    };
    g.initializers.insert("w".into(), Tensor::scalar_f32(1.0));
    g
}

fn names(g: &Graph) -> Vec<&str> {
    g.nodes.iter().map(|n| n.name.as_str()).collect()
}

#[test]
fn placeholders_become_fresh_names_in_call_order() {
    let mut g = chain();
    let mut p = Patch::new();
    let w1 = p.add_initializer("w", Tensor::scalar_f32(2.0));
    let v = p.fresh_name("y");
    let w2 = p.add_initializer("w", Tensor::scalar_f32(3.0));
    assert!(w1.starts_with('\0') && v.starts_with('\0'));
    p.replace_node(1, Node::new("b", "Mul", &["y", &w1], &[&v]));
    p.add_node(Node::new("c", "Add", &[&v, &w2], &["z"]));
    p.rename_output("z", "z_old");
    g.apply(p);
    let keys: Vec<&str> = g.initializers.keys().map(String::as_str).collect();
    assert_eq!(keys, ["w", "w_1", "w_2"]);
    assert_eq!(g.initializers["w_2"].as_f32().unwrap(), [3.0]);
    assert_eq!(g.nodes[1].inputs, ["y", "w_1"]);
    assert_eq!(g.nodes[1].outputs, ["y_1"]);
    assert_eq!(g.nodes[2].inputs, ["y_1", "w_2"]);
    // The rename reached the replaced node, not the inserted one.
    assert_eq!(g.nodes[2].outputs, ["z"]);
    g.topo_sort().unwrap();
}

#[test]
fn for_graph_hands_out_the_same_names_at_once() {
    let g = chain();
    let mut p = Patch::for_graph(&g);
    assert_eq!(p.add_initializer("w", Tensor::scalar_f32(2.0)), "w_1");
    assert_eq!(p.fresh_name("y"), "y_1");
    assert_eq!(p.fresh_name("y"), "y_2");
    assert_eq!(p.fresh_name("new"), "new");
    let mut g2 = g.clone();
    g2.apply(p);
    assert!(g2.initializers.contains_key("w_1"));
}

#[test]
fn fresh_names_avoid_every_name_in_the_graph() {
    // "y" is only a node output, "x" only a graph input.
    let mut g = chain();
    let mut p = Patch::new();
    let a = p.add_initializer("x", Tensor::scalar_f32(0.0));
    let b = p.add_initializer("y", Tensor::scalar_f32(0.0));
    p.replace_node(0, Node::new("a", "Add", &["x", &a, &b], &["y"]));
    g.apply(p);
    assert_eq!(g.nodes[0].inputs, ["x", "x_1", "y_1"]);
}

#[test]
fn indices_refer_to_the_graph_before_the_patch() {
    let mut g = chain();
    g.nodes.push(Node::new("c", "Relu", &["z"], &["u"]));
    let mut p = Patch::new();
    p.remove_node(0);
    p.replace_node(2, Node::new("c2", "Neg", &["z"], &["u"]));
    p.insert_node_before(1, Node::new("pre", "Relu", &["x"], &["y"]));
    p.insert_node_after(1, Node::new("post", "Relu", &["z"], &["v"]));
    p.insert_node_after(1, Node::new("post2", "Relu", &["z"], &["v2"]));
    g.apply(p);
    assert_eq!(names(&g), ["pre", "b", "post", "post2", "c2"]);
}

#[test]
fn removal_wins_over_replacement_and_last_replacement_wins() {
    let mut g = chain();
    let mut p = Patch::new();
    p.replace_node(0, Node::new("a1", "Neg", &["x"], &["y"]));
    p.replace_node(0, Node::new("a2", "Abs", &["x"], &["y"]));
    p.replace_node(1, Node::new("b1", "Neg", &["y"], &["z"]));
    p.remove_node(1);
    p.remove_node(1);
    g.apply(p);
    assert_eq!(names(&g), ["a2"]);
}

#[test]
fn redirect_rewires_graph_nodes_but_not_inserted_ones() {
    // Insert a Q -> DQ pair on y: readers of y read the DQ's output, the
    // inserted Q keeps reading y.
    let mut g = chain();
    let mut p = Patch::new();
    let q = p.fresh_name("y_q");
    let dq = p.fresh_name("y_dq");
    p.redirect("y", &dq);
    p.add_node(Node::new("q", "Neg", &["y"], &[&q]));
    p.add_node(Node::new("dq", "Neg", &[&q], &[&dq]));
    g.apply(p);
    // Sorted: the pair moves before b, which reads it.
    assert_eq!(names(&g), ["a", "q", "dq", "b"]);
    assert_eq!(g.nodes[1].inputs, ["y"]);
    assert_eq!(g.nodes[3].inputs, ["y_dq"]);
    g.topo_sort().unwrap();
}

#[test]
fn redirect_and_rename_output_rename_a_value() {
    // Remove b: a writes the graph output z itself.
    let mut g = chain();
    g.nodes.push(Node::new("c", "Relu", &["y"], &["u"]));
    g.outputs.push(ValueInfo::known("u", DType::F32, &[1]));
    let mut p = Patch::new();
    p.remove_node(1);
    p.rename_output("y", "z");
    p.redirect("y", "z");
    g.apply(p);
    assert_eq!(names(&g), ["a", "c"]);
    assert_eq!(g.nodes[0].outputs, ["z"]);
    assert_eq!(g.nodes[1].inputs, ["z"]);
    // Graph outputs are not renamed by a redirect.
    assert_eq!(g.outputs[0].name, "z");
}

#[test]
fn sorted_lists_keep_their_order_and_unsorted_ones_are_sorted() {
    let mut g = chain();
    g.nodes.push(Node::new("c", "Relu", &["x"], &["u"]));
    g.outputs.push(ValueInfo::known("u", DType::F32, &[1]));
    let mut p = Patch::new();
    // a now reads a value produced by a node appended at the end.
    p.replace_node(0, Node::new("a", "Relu", &["k"], &["y"]));
    p.add_node(Node::new("k", "Relu", &["x"], &["k"]));
    let mut g2 = g.clone();
    g.apply(p);
    // As topo_sort: the lowest-index ready node first, so c (ready) goes
    // before k (appended last); a waits for k.
    assert_eq!(names(&g), ["c", "k", "a", "b"]);
    // insert_node_before places it exactly.
    let mut p = Patch::new();
    p.replace_node(0, Node::new("a", "Relu", &["k"], &["y"]));
    p.insert_node_before(0, Node::new("k", "Relu", &["x"], &["k"]));
    g2.apply(p);
    assert_eq!(names(&g2), ["k", "a", "b", "c"]);
    // An edit that keeps the order valid moves nothing, even where a
    // different order would also be valid.
    let mut p = Patch::new();
    p.replace_node(0, Node::new("c2", "Relu", &["x"], &["u"]));
    g.apply(p);
    assert_eq!(names(&g), ["c2", "k", "a", "b"]);
}

#[test]
fn a_cycle_leaves_the_order_for_topo_sort_to_report() {
    let mut g = chain();
    let mut p = Patch::new();
    p.replace_node(0, Node::new("a", "Relu", &["z"], &["y"]));
    g.apply(p);
    assert_eq!(names(&g), ["a", "b"]);
    assert!(g.topo_sort().is_err());
}

#[test]
fn prunes_unread_initializers_only_when_asked() {
    let mut g = chain();
    g.nodes[0].inputs.push("w".into());
    let edit = |prune: bool| {
        let mut p = Patch::new();
        p.replace_node(0, Node::new("a", "Relu", &["x"], &["y"]));
        if prune {
            p.prune_initializers();
        }
        p
    };
    let mut kept = g.clone();
    kept.apply(edit(false));
    assert!(kept.initializers.contains_key("w"));
    g.apply(edit(true));
    assert!(g.initializers.is_empty());
}

#[test]
fn set_initializer_keeps_the_place_in_file_order() {
    let mut g = chain();
    g.initializers.insert("v".into(), Tensor::scalar_f32(5.0));
    let mut p = Patch::new();
    p.set_initializer("w", Tensor::scalar_f32(7.0));
    p.set_initializer("u", Tensor::scalar_f32(8.0));
    g.apply(p);
    let keys: Vec<&str> = g.initializers.keys().map(String::as_str).collect();
    assert_eq!(keys, ["w", "v", "u"]);
    assert_eq!(g.initializers["w"].as_f32().unwrap(), [7.0]);
}

#[test]
fn new_domains_are_declared() {
    let mut g = chain();
    g.opsets.insert(String::new(), 13);
    g.opsets.insert("mine".into(), 3);
    let mut p = Patch::new();
    let mut n = Node::new("q", "QLinearAdd", &["y"], &["y2"]);
    n.domain = "com.microsoft".into();
    p.insert_node_after(0, n);
    let mut m = Node::new("a", "Thing", &["x"], &["y"]);
    m.domain = "mine".into();
    p.replace_node(0, m);
    assert_eq!(p.new_nodes().count(), 2);
    g.apply(p);
    assert_eq!(g.opsets["com.microsoft"], 1);
    assert_eq!(g.opsets["mine"], 3);
}

#[test]
fn empty_patch_changes_nothing() {
    let mut g = chain();
    let p = Patch::new();
    assert!(p.is_empty());
    let before = g.clone();
    g.apply(p);
    assert_eq!(g, before);
}

#[test]
#[should_panic(expected = "patch edits node 2")]
fn out_of_range_indices_panic() {
    let mut g = chain();
    let mut p = Patch::new();
    p.remove_node(2);
    g.apply(p);
}
