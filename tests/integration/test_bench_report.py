"""bench/report turns presbench JSON files into one self-contained HTML page:
run presbench once against a real presenced, report it as two servers side by
side, and check the page: well-formed HTML, every chart an inline SVG that
parses as XML, nothing loaded from elsewhere, both labels and the figures of
the run in the tables. Skipped (77) without gnuplot."""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.dom.minidom

import harness
import test_presbench as tp
from harness import Node

REPORT = os.path.join(harness.SRC, "bench", "report")


class Checker(html.parser.HTMLParser):
    """Counts tags and checks that every opened non-void element is closed."""
    VOID = {"meta", "br", "img", "hr", "input", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.count, self.errors = [], {}, []

    def handle_starttag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.errors.append("external reference %s=%s" % (name, value))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes <%s>" % (tag, self.stack[-1] if self.stack
                                                       else "nothing"))
            return
        self.stack.pop()


def test_report_of_two_servers():
    node = Node(config=tp.CONFIG).wait_ready()
    try:
        tp.provision(node)
        r, _ = tp.run_json(node, "--rates", "100,300", "--msg-rate", "20")
    finally:
        node.stop()
        node.cleanup()
    tmp = tempfile.mkdtemp(prefix="pb-report-it-")
    a, b = os.path.join(tmp, "a.json"), os.path.join(tmp, "b.json")
    with open(a, "w") as f:
        json.dump(r, f)
    r["label"] = "other <server>"
    with open(b, "w") as f:
        json.dump(r, f)
    out = os.path.join(tmp, "report.html")
    p = subprocess.run([REPORT, "-o", out, "--title", "smoke", a, b], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    with open(out) as f:
        page = f.read()
    shutil.rmtree(tmp, ignore_errors=True)
    c = Checker()
    c.feed(page)
    c.close()
    assert not c.errors, c.errors[:5]
    assert c.stack == [], c.stack
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    # Two per-stage charts; deliveries, messages, logins, logouts, CPU and RSS
    # over time (CPU may be all zero at this load); two latencies over time.
    assert len(svgs) >= 8, len(svgs)
    assert c.count.get("svg") == len(svgs)
    for s in svgs:
        doc = xml.dom.minidom.parseString(s)
        assert doc.documentElement.tagName == "svg"
        assert doc.getElementsByTagName("path") or doc.getElementsByTagName("polyline")
    assert ">presenced</th>" in page and "other &lt;server&gt;" in page, page[:2000]
    assert "<script" not in page
    # The figures of the run are in the tables.
    assert ">%s<" % "{:,}".format(r["login"]["bound"]) in page
    assert "%s / %s" % ("{:,}".format(r["stages"][0]["delivered"]),
                        "{:,}".format(r["stages"][0]["expected"])) in page


if __name__ == "__main__":
    if not shutil.which("gnuplot"):
        print("skip: gnuplot is not installed (tools/install-deps.sh bench)")
        sys.exit(77)
    harness.run([test_report_of_two_servers])
