#!/bin/sh
# What the object-aware call graph (receiver types, classes, properties, protocols, callbacks and
# return types in the summaries; the edges they give in the repo phase) costs a full audit:
# this checkout's build against the same commit built with objects.patch applied, which makes
# every file's object facts empty. Full audits alternate (ablated, then this build) so both see
# the same machine drift. Figures only.
#
#   npm run build && sh bench/ablation/objects.sh TREE [ROUNDS]
#
# Needs git (a temporary worktree of HEAD) and this checkout's node_modules.
set -eu
TREE=${1:?usage: sh bench/ablation/objects.sh TREE [ROUNDS]}
ROUNDS=${2:-2}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
WT=$(mktemp -d /tmp/pa-ablation.XXXXXX)
trap 'git -C "$HERE" worktree remove --force "$WT" >/dev/null 2>&1 || true' EXIT
git -C "$HERE" worktree add -q --detach "$WT" HEAD
ln -s "$HERE/node_modules" "$WT/node_modules"
git -C "$WT" apply "$HERE/bench/ablation/objects.patch"
(cd "$WT" && npx tsc -p tsconfig.json >/dev/null && node -e "import('./dist/src/rules/catalog.js').then((m) => m.writeRuleCatalog())")
for r in $(seq 1 "$ROUNDS"); do
  for build in "$WT" "$HERE"; do
    label=$([ "$build" = "$HERE" ] && echo "with objects" || echo "ablated     ")
    line=$(cd "$build" && node --expose-gc dist/bench/bench.js "$TREE" --only full --no-workers --no-cache-run --repeat 1 2>/dev/null | grep -E '^\(c\) full|findings')
    echo "round $r $label $(echo "$line" | tr -s ' ' | tr '\n' ' ')"
  done
done
