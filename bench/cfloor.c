/*
 * The parse floor in C: tree-sitter-python parsing a list of files (paths on stdin, one per
 * line; files over 2 MB skipped), three rounds, MB/s per round. With any argument, each tree is
 * also walked once with a cursor. Figures only; not built by npm, not part of the tool.
 *
 *   TS=node_modules/tree-sitter/vendor/tree-sitter/lib PY=node_modules/tree-sitter-python/src
 *   gcc -O2 -I$TS/include -I$TS/src -I$PY bench/cfloor.c $TS/src/lib.c $PY/parser.c $PY/scanner.c -o /tmp/cfloor
 *   find "$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')" -name '*.py' \
 *     -not -path '*site-packages*' | /tmp/cfloor
 */
#include <tree_sitter/api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const TSLanguage *tree_sitter_python(void);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  size_t cap = 1024, n = 0, total = 0;
  char **bufs = malloc(cap * sizeof *bufs);
  size_t *lens = malloc(cap * sizeof *lens);
  char path[4096];
  while (fgets(path, sizeof path, stdin)) {
    path[strcspn(path, "\n")] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > 2000000) {
      fclose(f);
      continue;
    }
    if (n == cap) {
      cap *= 2;
      bufs = realloc(bufs, cap * sizeof *bufs);
      lens = realloc(lens, cap * sizeof *lens);
    }
    bufs[n] = malloc(len + 1);
    lens[n] = fread(bufs[n], 1, len, f);
    fclose(f);
    total += lens[n++];
  }
  TSParser *parser = ts_parser_new();
  ts_parser_set_language(parser, tree_sitter_python());
  for (int round = 0; round < 3; round++) {
    double t = now();
    long nodes = 0;
    for (size_t i = 0; i < n; i++) {
      TSTree *tree = ts_parser_parse_string(parser, NULL, bufs[i], lens[i]);
      if (argc > 1) {
        TSTreeCursor c = ts_tree_cursor_new(ts_tree_root_node(tree));
        for (;;) {
          nodes++;
          if (ts_tree_cursor_goto_first_child(&c)) continue;
          while (!ts_tree_cursor_goto_next_sibling(&c))
            if (!ts_tree_cursor_goto_parent(&c)) goto done;
        }
      done:
        ts_tree_cursor_delete(&c);
      }
      ts_tree_delete(tree);
    }
    double d = now() - t;
    printf("files %zu  %.1f MB  %.2f s  %.2f MB/s  nodes walked %ld\n", n, total / 1e6, d, total / 1e6 / d, nodes);
  }
  return 0;
}
