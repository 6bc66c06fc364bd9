from __future__ import annotations

import pytest

from dsv4.tools.repo_map.languages import GRAMMARS, grammar
from dsv4.tools.repo_map.tags import FileTags, IncrementalParser, extract_tags

SAMPLES = {
    "python": ("class Store:\n    limit = 3\n    def get(self, key):\n        return lookup(key)\n\nMAX = 1\n",
               {"Store", "limit", "get", "MAX"}, {"lookup"}),
    "javascript": ("class Cart { total() { return sum(this.items); } }\nfunction sum(xs) { return xs.reduce(add); }\n"
                   "const helper = () => new Cart();\n",
                   {"Cart", "total", "sum", "helper"}, {"sum", "items", "reduce", "Cart"}),
    "typescript": ("interface Shape { area(): number }\nclass Circle implements Shape { area() { return compute(1); } }\n"
                   "type Id = string;\nenum Color { Red }\nexport function draw(s: Shape): void {}\n",
                   {"Shape", "Circle", "area", "Id", "Color", "draw"}, {"compute", "Shape"}),
    "tsx": ("export function App() { return <Header title='x' />; }\n", {"App"}, {"Header"}),
    "go": ("package main\n\ntype Server struct{}\n\nfunc (s *Server) Serve() error { return listen() }\n\n"
           "func listen() error { return nil }\n\nconst Port = 80\n",
           {"Server", "Serve", "listen", "Port"}, {"listen", "Server"}),
    "rust": ("pub struct Pool;\ntrait Run { fn go(&self); }\nimpl Pool { pub fn new() -> Pool { make() } }\n"
             "fn make() -> Pool { Pool }\nmacro_rules! m { () => {} }\n",
             {"Pool", "Run", "go", "new", "make", "m"}, {"make", "Pool"}),
    "java": ("class Account { private int total; Account() {} int balance() { return Ledger.sum(total); } }\n"
             "interface Ledger {}\n",
             {"Account", "total", "balance", "Ledger"}, {"sum"}),
    "c": ("#define MAX 4\ntypedef struct node { int v; } node_t;\nstatic int count(node_t *n) { return helper(n->v); }\n",
          {"MAX", "node", "node_t", "count"}, {"helper", "node_t", "v"}),
    "cpp": ("namespace app {\nclass Widget { public: void draw(); };\nvoid Widget::draw() { render(); }\n}\n",
            {"app", "Widget", "draw"}, {"render"}),
}


@pytest.mark.parametrize("language", sorted(GRAMMARS))
def test_every_query_compiles(language: str) -> None:
    assert grammar(language).query.pattern_count > 0


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_definitions_and_references(language: str) -> None:
    source, defs, refs = SAMPLES[language]
    tags = extract_tags(source.encode(), language)
    assert defs <= {d.name for d in tags.defs}, tags.defs
    assert refs <= set(tags.refs), tags.refs


def test_scope_lines_point_at_enclosing_headers() -> None:
    source = b"class Outer:\n    x = 1\n\n    class Inner:\n        def deep(self):\n            pass\n"
    by_name = {d.name: d for d in extract_tags(source, "python").defs}
    assert by_name["deep"].scopes == (0, 3)
    assert by_name["Inner"].scopes == (0,)
    assert by_name["Outer"].scopes == ()


def test_json_round_trip() -> None:
    tags = extract_tags(SAMPLES["go"][0].encode(), "go")
    assert FileTags.from_json(tags.to_json()) == tags


def test_incremental_reparse_matches_full_parse() -> None:
    parser = IncrementalParser()
    old = b"def a():\n    return b()\n\n\ndef b():\n    return 2\n"
    new = b"def a():\n    return b()\n\n\ndef inserted():\n    pass\n\n\ndef b():\n    return 3\n"
    parser.tags("m.py", old, "python")
    assert parser.tags("m.py", new, "python") == extract_tags(new, "python")
    shrunk = b"def b():\n    return 3\n"
    assert parser.tags("m.py", shrunk, "python") == extract_tags(shrunk, "python")
