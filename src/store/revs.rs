//! Revision ids and the per-document revision tree.
//!
//! A document's history is a forest of revisions (several roots appear when
//! replication brings unrelated histories or when old revisions are stemmed).
//! The tree is stored flat: every node knows its parent index, and leaves are
//! the nodes nobody points at. Trees are small (bounded by `revs_limit` per
//! branch), so linear scans beat any index here.

use std::cmp::Ordering;
use std::fmt;

use md5::{Digest, Md5};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::term;

use crate::{Error, Result};

/// A revision: its generation (`pos`, the depth in the tree) and its id.
///
/// Revision ids are 32 lowercase hex digits for revisions settee creates, but
/// replicated revisions may carry any string, so ids are kept verbatim.
/// The derived order (generation, then id bytes) is CouchDB's.
///
/// ```
/// use settee::Rev;
/// let rev = Rev::parse("2-abc").unwrap();
/// assert_eq!((rev.pos, rev.id.as_str()), (2, "abc"));
/// assert_eq!(rev.to_string(), "2-abc");
/// assert!(Rev::parse("x-abc").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rev {
    /// The generation, 1 for a document's first revision.
    pub pos: u64,
    /// The revision id.
    pub id: String,
}

impl Rev {
    /// Parses `"<pos>-<id>"`; anything else is `bad_request` "Invalid rev format".
    pub fn parse(s: &str) -> Result<Rev> {
        let invalid = || Error::bad_request("Invalid rev format");
        let (pos, id) = s.split_once('-').ok_or_else(invalid)?;
        if pos.is_empty() || !pos.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let pos = pos.parse().map_err(|_| invalid())?;
        Ok(Rev {
            pos,
            id: id.to_owned(),
        })
    }

    /// Parses a JSON value that must be a rev string.
    ///
    /// ```
    /// use settee::Rev;
    /// assert_eq!(Rev::from_json(&serde_json::json!("1-a")).unwrap().pos, 1);
    /// assert_eq!(Rev::from_json(&serde_json::json!(1)).unwrap_err().reason(), "Invalid rev format");
    /// ```
    pub fn from_json(v: &serde_json::Value) -> Result<Rev> {
        match v {
            serde_json::Value::String(s) => Rev::parse(s),
            _ => Err(Error::bad_request("Invalid rev format")),
        }
    }

    /// The revision that an edit of `parent` (or a new document) with this
    /// body (special members removed) creates: generation + 1 and CouchDB's
    /// own revision id, the md5 of the Erlang term
    /// `[Deleted, ParentPos, ParentId, Body, []]` (`couch_db:new_revid/1`).
    ///
    /// The same edit therefore yields the same revision here, on every
    /// replica, and on CouchDB itself.
    ///
    /// ```
    /// use settee::Rev;
    /// let body = serde_json::json!({"_id": "x"}); // members other than `_id`: none
    /// let mut body = body.as_object().unwrap().clone();
    /// body.remove("_id");
    /// let rev = Rev::next(None, false, &body);
    /// assert_eq!(rev.to_string(), "1-967a00dff5e02add41819138abb3284d");
    /// ```
    pub fn next(parent: Option<&Rev>, deleted: bool, body: &Map<String, Value>) -> Rev {
        let parent_id = parent.map(Rev::id_bytes);
        let term = term::revision_term(
            deleted,
            parent.zip(parent_id.as_deref()).map(|(p, id)| (p.pos, id)),
            body,
        );
        Rev {
            pos: parent.map_or(1, |p| p.pos + 1),
            id: to_hex(&Md5::digest(term)),
        }
    }

    /// The id as CouchDB keeps it: 32 hex digits are 16 bytes, any other id
    /// stays as given (`couch_doc:parse_revid/1`).
    pub(crate) fn id_bytes(&self) -> Vec<u8> {
        Rev::id_of(&self.id)
    }

    fn id_of(id: &str) -> Vec<u8> {
        let hex = id.as_bytes();
        if hex.len() == 32 && hex.iter().all(u8::is_ascii_hexdigit) {
            let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            hex.chunks(2)
                .map(|p| digit(p[0]) << 4 | digit(p[1]))
                .collect()
        } else {
            hex.to_vec()
        }
    }
}

impl Rev {
    /// CouchDB's revision order: generation, then the id as CouchDB stores it
    /// (16 raw bytes for a hex id, so equal to the lowercase hex string order;
    /// other ids as their bytes).
    ///
    /// ```
    /// use std::cmp::Ordering;
    /// use settee::Rev;
    ///
    /// let rev = |s| Rev::parse(s).unwrap();
    /// assert_eq!(rev("2-a").couch_cmp(&rev("10-a")), Ordering::Less);
    /// assert_eq!(rev("1-b").couch_cmp(&rev("1-a")), Ordering::Greater);
    /// ```
    pub fn couch_cmp(&self, other: &Rev) -> Ordering {
        self.pos
            .cmp(&other.pos)
            .then_with(|| cmp_ids(&self.id, &other.id))
    }
}

fn is_lower_hex32(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares revision ids as CouchDB's binaries, without allocating for the
/// usual lowercase hex ids.
fn cmp_ids(a: &str, b: &str) -> Ordering {
    if is_lower_hex32(a) && is_lower_hex32(b) {
        a.cmp(b)
    } else {
        let (a, b) = (Rev::id_of(a), Rev::id_of(b));
        a.cmp(&b)
    }
}

/// A fresh random-looking hex id (32 digits) derived from `seed`.
pub(crate) fn hex_digest(seed: &[u8]) -> String {
    to_hex(&Md5::digest(seed))
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

impl fmt::Display for Rev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.pos, self.id)
    }
}

impl Serialize for Rev {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One revision in a [`RevTree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevNode {
    /// The revision.
    pub rev: Rev,
    /// Index of the parent node; `None` for a root (or a stemmed branch start).
    pub parent: Option<u32>,
    /// Whether this revision is a deletion (tombstone).
    pub deleted: bool,
    /// Whether the revision's body is stored (ancestors learnt only from
    /// `_revisions`, and bodies dropped by compaction, are not).
    pub has_body: bool,
}

/// The revision tree of one document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevTree {
    nodes: Vec<RevNode>,
}

impl RevTree {
    /// A tree from its nodes (parents must point inside the vector).
    pub fn from_nodes(nodes: Vec<RevNode>) -> RevTree {
        RevTree { nodes }
    }

    /// All nodes, in insertion order.
    pub fn nodes(&self) -> &[RevNode] {
        &self.nodes
    }

    /// The node at `idx`.
    pub fn node(&self, idx: usize) -> &RevNode {
        &self.nodes[idx]
    }

    /// Index of the node holding `rev`.
    pub fn find(&self, rev: &Rev) -> Option<usize> {
        self.nodes.iter().position(|n| n.rev == *rev)
    }

    fn leaf_flags(&self) -> Vec<bool> {
        let mut leaf = vec![true; self.nodes.len()];
        for n in &self.nodes {
            if let Some(p) = n.parent {
                leaf[p as usize] = false;
            }
        }
        leaf
    }

    /// Whether the node at `idx` has no children.
    pub fn is_leaf(&self, idx: usize) -> bool {
        !self.nodes.iter().any(|n| n.parent == Some(idx as u32))
    }

    /// Leaf indexes in CouchDB's winner order (`couch_doc:to_doc_info_path/1`):
    /// live before deleted, then higher generation, then higher revision id.
    /// The first one wins; the rest, in this order, are `_conflicts` (live),
    /// `_deleted_conflicts` (deleted), the `style=all_docs` changes and the
    /// `possible_ancestors` of `_revs_diff`.
    pub fn sorted_leaves(&self) -> Vec<usize> {
        let flags = self.leaf_flags();
        let mut leaves: Vec<usize> = (0..self.nodes.len()).filter(|&i| flags[i]).collect();
        leaves.sort_by(|&a, &b| {
            let (a, b) = (&self.nodes[a], &self.nodes[b]);
            (!b.deleted)
                .cmp(&!a.deleted)
                .then_with(|| b.rev.couch_cmp(&a.rev))
        });
        leaves
    }

    /// Leaf indexes in CouchDB's key-tree order (`couch_key_tree:get_all_leafs/1`,
    /// what `_bulk_get` lists for a document without `rev`). CouchDB keeps
    /// the trees of a document sorted by their root (generation, then id)
    /// and each node's children by id; it walks the trees last first, each
    /// depth first.
    pub fn key_tree_leaves(&self) -> Vec<usize> {
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        let mut roots = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            match n.parent {
                Some(p) => children[p as usize].push(i),
                None => roots.push(i),
            }
        }
        let by_rev = |a: &usize, b: &usize| self.nodes[*a].rev.couch_cmp(&self.nodes[*b].rev);
        roots.sort_by(by_rev);
        for c in &mut children {
            c.sort_by(by_rev);
        }
        let mut out = Vec::new();
        for &root in roots.iter().rev() {
            // Depth first, smallest child first: push children reversed.
            let mut stack = vec![root];
            while let Some(i) = stack.pop() {
                if children[i].is_empty() {
                    out.push(i);
                }
                stack.extend(children[i].iter().rev());
            }
        }
        out
    }

    /// Index of the winning leaf. Panics on an empty tree (stored trees never are).
    pub fn winner(&self) -> usize {
        self.sorted_leaves()[0]
    }

    /// Whether the document is deleted: its winner (hence every leaf) is a tombstone.
    pub fn is_deleted(&self) -> bool {
        self.nodes[self.winner()].deleted
    }

    /// Node indexes from `idx` up to its (possibly stemmed) root.
    pub fn path(&self, idx: usize) -> Vec<usize> {
        let mut path = vec![idx];
        let mut cur = idx;
        while let Some(p) = self.nodes[cur].parent {
            cur = p as usize;
            path.push(cur);
        }
        path
    }

    /// Leaves that descend from (or are) the node at `idx`.
    pub fn leaves_under(&self, idx: usize) -> Vec<usize> {
        let flags = self.leaf_flags();
        (0..self.nodes.len())
            .filter(|&l| flags[l] && self.path(l).contains(&idx))
            .collect()
    }

    /// Adds a revision under `parent` and returns its index.
    pub fn push(
        &mut self,
        parent: Option<usize>,
        rev: Rev,
        deleted: bool,
        has_body: bool,
    ) -> usize {
        self.nodes.push(RevNode {
            rev,
            parent: parent.map(|p| p as u32),
            deleted,
            has_body,
        });
        self.nodes.len() - 1
    }

    /// Marks the node's body as stored or dropped.
    pub fn set_has_body(&mut self, idx: usize, has_body: bool) {
        self.nodes[idx].has_body = has_body;
    }

    /// Merges a replicated revision path (`path[0]` is the new leaf, then its
    /// ancestors, newest first). Ancestors missing from the tree are added
    /// without bodies. Returns the leaf's index and whether it was new.
    pub fn merge_path(&mut self, path: &[Rev], deleted: bool) -> (usize, bool) {
        if let Some(idx) = self.find(&path[0]) {
            return (idx, false);
        }
        // The newest ancestor already known anchors the new branch.
        let anchor = path
            .iter()
            .enumerate()
            .skip(1)
            .find_map(|(i, r)| self.find(r).map(|idx| (i, idx)));
        let (mut parent, first_new) = match anchor {
            Some((i, idx)) => (Some(idx), i - 1),
            None => (None, path.len() - 1),
        };
        for (i, rev) in path[..=first_new].iter().enumerate().rev() {
            let is_leaf = i == 0;
            parent = Some(self.push(parent, rev.clone(), is_leaf && deleted, is_leaf));
        }
        (parent.expect("path is not empty"), true)
    }

    /// Keeps the newest `limit` revisions of every leaf's path and returns
    /// the dropped revisions (whose bodies the caller deletes).
    ///
    /// Like CouchDB's `couch_key_tree:stem/2`, which truncates each path and
    /// merges the truncated paths again: a parent link survives only when some
    /// leaf's truncated path contains both ends of it.
    pub fn stem(&mut self, limit: usize) -> Vec<RevNode> {
        let limit = limit.max(1);
        let flags = self.leaf_flags();
        let mut keep = vec![false; self.nodes.len()];
        let mut keep_link = vec![false; self.nodes.len()];
        for leaf in (0..self.nodes.len()).filter(|&i| flags[i]) {
            let path = self.path(leaf);
            for (depth, &idx) in path.iter().enumerate().take(limit) {
                keep[idx] = true;
                if depth + 1 < limit && depth + 1 < path.len() {
                    keep_link[idx] = true;
                }
            }
        }
        if keep.iter().all(|&k| k) {
            return Vec::new();
        }
        let mut new_index = vec![u32::MAX; self.nodes.len()];
        let mut next = 0u32;
        for (i, k) in keep.iter().enumerate() {
            if *k {
                new_index[i] = next;
                next += 1;
            }
        }
        let mut kept = Vec::with_capacity(next as usize);
        let mut dropped = Vec::new();
        for (i, mut node) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            if keep[i] {
                node.parent = node
                    .parent
                    .filter(|_| keep_link[i])
                    .map(|p| new_index[p as usize]);
                kept.push(node);
            } else {
                dropped.push(node);
            }
        }
        self.nodes = kept;
        dropped
    }

    /// `{"start": pos, "ids": [...]}` for the node at `idx`: its ancestry, newest first.
    pub fn revisions_json(&self, idx: usize) -> serde_json::Value {
        let ids: Vec<&str> = self
            .path(idx)
            .into_iter()
            .map(|i| self.nodes[i].rev.id.as_str())
            .collect();
        serde_json::json!({ "start": self.nodes[idx].rev.pos, "ids": ids })
    }

    /// `_revs_info` for the node at `idx`: every ancestor with its status.
    pub fn revs_info_json(&self, idx: usize) -> serde_json::Value {
        let info: Vec<serde_json::Value> = self
            .path(idx)
            .into_iter()
            .map(|i| {
                let n = &self.nodes[i];
                let status = if !n.has_body {
                    "missing"
                } else if n.deleted {
                    "deleted"
                } else {
                    "available"
                };
                serde_json::json!({ "rev": n.rev.to_string(), "status": status })
            })
            .collect();
        serde_json::Value::Array(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rev(s: &str) -> Rev {
        Rev::parse(s).unwrap()
    }

    #[test]
    fn parse_accepts_couchdb_formats() {
        assert_eq!(rev("1-").id, "");
        assert_eq!(rev("01-00").pos, 1);
        assert_eq!(rev("1-xyz-").id, "xyz-");
        for bad in ["", "abc", "-1", "x-abc", "1a-b"] {
            let e = Rev::parse(bad).unwrap_err();
            assert_eq!(
                (e.name(), e.reason().as_str()),
                ("bad_request", "Invalid rev format")
            );
        }
    }

    #[test]
    fn next_rev_is_deterministic_and_content_addressed() {
        let body = serde_json::json!({"a": 1});
        let body = body.as_object().unwrap();
        let a = Rev::next(None, false, body);
        assert_eq!(a, Rev::next(None, false, body));
        assert_eq!(a.pos, 1);
        assert_eq!(a.id.len(), 32);
        assert!(a
            .id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, Rev::next(None, true, body));
        let b = Rev::next(Some(&a), false, body);
        assert_eq!(b.pos, 2);
        assert_ne!(b.id, a.id);
    }

    #[test]
    fn next_rev_is_couchdbs() {
        // Recorded from CouchDB 3.5: a first edit, a fake short parent and a
        // deletion of a hex parent.
        let body = serde_json::json!({"v": 16});
        let body = body.as_object().unwrap();
        let parent = rev("2-fbee243c2ce9f70ff484e5f3e487ec76");
        assert_eq!(parent.id_bytes().len(), 16);
        assert_eq!(rev("1-abc").id_bytes(), b"abc");
        assert_eq!(
            Rev::next(Some(&parent), true, &Map::new()).to_string(),
            "3-81eb694b585b9480efe1ebc013257e54"
        );
        let first = Rev::next(None, false, body);
        assert_eq!(first.pos, 1);
        assert_ne!(first, Rev::next(Some(&rev("1-abc")), false, body));
    }

    #[test]
    fn winner_prefers_live_then_generation_then_id() {
        let mut t = RevTree::default();
        let root = t.push(None, rev("1-a"), false, true);
        let b = t.push(Some(root), rev("2-b"), false, true);
        let c = t.push(Some(root), rev("2-c"), false, true);
        t.push(Some(c), rev("3-d"), true, true);
        // The deleted 3-d is deeper, but the live 2-b wins.
        assert_eq!(t.node(t.winner()).rev, rev("2-b"));
        assert!(!t.is_deleted());
        t.push(Some(root), rev("2-z"), false, true);
        assert_eq!(t.node(t.winner()).rev, rev("2-z"));
        t.push(Some(b), rev("3-a"), false, true);
        assert_eq!(t.node(t.winner()).rev, rev("3-a"));
        let order: Vec<String> = t
            .sorted_leaves()
            .iter()
            .map(|&i| t.node(i).rev.to_string())
            .collect();
        assert_eq!(order, ["3-a", "2-z", "3-d"]);
    }

    #[test]
    fn merge_path_anchors_on_known_ancestor() {
        let mut t = RevTree::default();
        t.merge_path(&[rev("2-b"), rev("1-a")], false);
        let (idx, new) = t.merge_path(&[rev("3-d"), rev("2-c"), rev("1-a")], true);
        assert!(new);
        assert_eq!(t.nodes().len(), 4);
        assert_eq!(t.path(idx).len(), 3);
        assert!(t.node(idx).deleted);
        assert!(!t.node(t.find(&rev("1-a")).unwrap()).has_body);
        assert_eq!(t.merge_path(&[rev("3-d"), rev("2-c")], true), (idx, false));
    }

    #[test]
    fn stem_keeps_limit_per_branch() {
        let mut t = RevTree::default();
        let mut parent = None;
        for i in 1..=9 {
            parent = Some(t.push(parent, rev(&format!("{i}-r{i}")), false, true));
        }
        let dropped = t.stem(4);
        assert_eq!(dropped.len(), 5);
        assert_eq!(t.nodes().len(), 4);
        let w = t.winner();
        assert_eq!(t.node(w).rev, rev("9-r9"));
        assert_eq!(
            t.revisions_json(w),
            serde_json::json!({"start": 9, "ids": ["r9", "r8", "r7", "r6"]})
        );
    }

    fn arb_paths() -> impl Strategy<Value = Vec<(Vec<Rev>, bool)>> {
        // Branches off a shared history: each path is a chain of ids over a small alphabet
        // so branches share ancestors and collide on purpose.
        prop::collection::vec((prop::collection::vec(0u8..3, 1..6), any::<bool>()), 1..8).prop_map(
            |specs| {
                specs
                    .into_iter()
                    .map(|(chain, deleted)| {
                        let mut path: Vec<Rev> = Vec::new();
                        let mut prefix = String::new();
                        for (depth, c) in chain.iter().enumerate() {
                            prefix.push((b'a' + c) as char);
                            path.push(Rev {
                                pos: depth as u64 + 1,
                                id: prefix.clone(),
                            });
                        }
                        path.reverse();
                        (path, deleted)
                    })
                    .collect()
            },
        )
    }

    fn build(paths: &[(Vec<Rev>, bool)]) -> RevTree {
        let mut t = RevTree::default();
        for (p, d) in paths {
            t.merge_path(p, *d);
        }
        t
    }

    fn leaf_set(t: &RevTree) -> Vec<(Rev, bool)> {
        let mut v: Vec<_> = t
            .sorted_leaves()
            .into_iter()
            .map(|i| (t.node(i).rev.clone(), t.node(i).deleted))
            .collect();
        v.sort();
        v
    }

    proptest! {
        #[test]
        fn winner_is_independent_of_insertion_order(paths in arb_paths(), seed in any::<u64>()) {
            let a = build(&paths);
            let mut shuffled = paths.clone();
            // Deterministic Fisher-Yates from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let b = build(&shuffled);
            // Deletion flags only attach to a leaf when it is first inserted, so
            // compare trees built from paths whose leaves are unique.
            prop_assume!(leaf_set(&a) == leaf_set(&b));
            prop_assert_eq!(&a.node(a.winner()).rev, &b.node(b.winner()).rev);
            prop_assert_eq!(a.sorted_leaves().len(), b.sorted_leaves().len());
        }

        #[test]
        fn stemming_keeps_every_leaf_and_bounds_depth(paths in arb_paths(), limit in 1usize..4) {
            let mut t = build(&paths);
            let before = leaf_set(&t);
            let winner = t.node(t.winner()).rev.clone();
            // The newest `limit` revisions of every leaf's path must survive.
            let must_keep: Vec<Vec<Rev>> = t
                .sorted_leaves()
                .into_iter()
                .map(|l| t.path(l).into_iter().take(limit).map(|i| t.node(i).rev.clone()).collect())
                .collect();
            let dropped = t.stem(limit);
            prop_assert_eq!(leaf_set(&t), before);
            prop_assert_eq!(&t.node(t.winner()).rev, &winner);
            for path in must_keep {
                let leaf = t.find(&path[0]).unwrap();
                let now: Vec<Rev> = t.path(leaf).into_iter().take(limit).map(|i| t.node(i).rev.clone()).collect();
                prop_assert_eq!(now, path);
            }
            prop_assert!(dropped.iter().all(|n| t.find(&n.rev).is_none()));
        }
    }
}
