// tree.js - a conversation's messages form a tree (an edit or a
// regeneration adds a sibling and keeps the old branch). The page shows one
// branch: from the root to the conversation's current leaf.

export function index(messages) {
  const byId = new Map();
  const kids = new Map(); // parent id (0: roots) -> child messages, oldest first
  for (const m of messages) {
    byId.set(m.id, m);
    const p = m.parent || 0;
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(m);
  }
  for (const list of kids.values()) list.sort((a, b) => a.id - b.id);
  return { byId, kids };
}

// Root first, ending at 'leaf' (an unknown leaf: the newest message).
export function branch(tree, leaf) {
  let m = tree.byId.get(leaf);
  if (!m) {
    let newest = 0;
    for (const id of tree.byId.keys()) newest = Math.max(newest, id);
    m = tree.byId.get(newest);
  }
  const path = [];
  for (let guard = 0; m && guard < 100000; guard++) {
    path.push(m);
    m = m.parent ? tree.byId.get(m.parent) : null;
  }
  return path.reverse();
}

// The versions of a message: it and its siblings, oldest first.
export function versions(tree, m) {
  return tree.kids.get(m.parent || 0) || [m];
}

// From a message, down through its newest children, to a leaf.
export function newestLeaf(tree, m) {
  for (let guard = 0; guard < 100000; guard++) {
    const kids = tree.kids.get(m.id);
    if (!kids || !kids.length) return m;
    m = kids[kids.length - 1];
  }
  return m;
}
