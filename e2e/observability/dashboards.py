#!/usr/bin/env python3
"""The Grafana dashboards' queries, outside Grafana.

  dashboards.py rules DASHBOARD.json...
      Prints a Prometheus rule file with one recording rule per panel query
      (Grafana's variables substituted), for `promtool check rules` to parse.
  dashboards.py check --prometheus URL --namespace NS --fleet NAME DASHBOARD.json...
      Runs every panel query against a real Prometheus and fails when one
      errors or returns no series.
  dashboards.py plot --prometheus URL --namespace NS --fleet NAME --minutes M --out FILE.svg DASHBOARD.json
      Draws every panel's series over the last M minutes as an SVG grid: the
      dashboard's picture from a real run, without a Grafana.
"""

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

# The rate interval Grafana would pick for a 15 s scrape interval (4 × scrape).
RATE_INTERVAL = "1m"


def queries(path):
    """(panel title, refId, expr, legend) of every panel target of a dashboard."""
    with open(path) as f:
        d = json.load(f)
    for p in d["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t["refId"], t["expr"], t.get("legendFormat", "")


def substitute(expr, namespace, fleet):
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", "15s")
        .replace("$namespace", namespace)
        .replace("$fleet", fleet)
    )


def api(base, path, params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body}")
    return body["data"]


def cmd_rules(args):
    print("groups:")
    for path in args.dashboards:
        uid = json.load(open(path))["uid"].replace("-", "_")
        print(f"  - name: dashboard-{uid}")
        print("    rules:")
        for i, (title, ref, expr, _) in enumerate(queries(path)):
            e = substitute(expr, "media", "photos")
            print(f"      - record: dashboard:{uid}:q{i}_{ref}")
            print(f"        expr: {json.dumps(e)}")
    return 0


def cmd_check(args):
    failed = 0
    for path in args.dashboards:
        for title, ref, expr, _ in queries(path):
            e = substitute(expr, args.namespace, args.fleet)
            try:
                result = api(args.prometheus, "/api/v1/query", {"query": e})["result"]
                n = len(result)
                verdict = "ok" if n > 0 else "NO DATA"
            except Exception as err:  # a query Prometheus refuses
                n, verdict = 0, f"ERROR {err}"
            if n == 0:
                failed += 1
            print(f"{verdict:8} {n:3} series  {path.rsplit('/', 1)[-1]} / {title} [{ref}]: {e}")
    if failed:
        print(f"{failed} panel queries returned nothing", file=sys.stderr)
    return 1 if failed else 0


def cmd_plot(args):
    path = args.dashboards[0]
    d = json.load(open(path))
    end = time.time()
    start = end - args.minutes * 60
    step = max(5, int(args.minutes * 60 / 120))
    panels = []
    for p in d["panels"]:
        series = []
        for t in p.get("targets", []):
            e = substitute(t["expr"], args.namespace, args.fleet)
            data = api(args.prometheus, "/api/v1/query_range", {"query": e, "start": start, "end": end, "step": step})
            for s in data["result"]:
                legend = t.get("legendFormat", "")
                for k, v in s["metric"].items():
                    legend = legend.replace("{{" + k + "}}", v)
                pts = [(float(ts), float(v)) for ts, v in s["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if pts:
                    series.append((legend or e[:40], pts))
        panels.append((p["title"], p["fieldConfig"]["defaults"].get("unit", ""), series))
    with open(args.out, "w") as f:
        f.write(svg(d["title"], panels, start, end))
    print(f"wrote {args.out}: {len(panels)} panels, {sum(len(s) for _, _, s in panels)} series")
    return 0


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def fmt(v, unit):
    if unit == "percentunit":
        return f"{v * 100:.2g}%"
    if unit == "s":
        return f"{v * 1000:.3g}ms" if v < 1 else f"{v:.3g}s"
    return f"{v:.3g}"


def svg(title, panels, start, end):
    cols, pw, ph, pad = 3, 420, 230, 14
    rows = (len(panels) + cols - 1) // cols
    width, height = cols * (pw + pad) + pad, rows * (ph + pad) + pad + 34
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#f4f5f5"/>',
        f'<text x="{pad}" y="24" font-size="17" font-weight="bold">{esc(title)}</text>',
    ]
    for i, (ptitle, unit, series) in enumerate(panels):
        x0 = pad + (i % cols) * (pw + pad)
        y0 = 34 + pad + (i // cols) * (ph + pad)
        out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="white" stroke="#ccc"/>')
        out.append(f'<text x="{x0 + 8}" y="{y0 + 16}" font-weight="bold">{esc(ptitle)}</text>')
        gx, gy, gw, gh = x0 + 48, y0 + 26, pw - 58, ph - 90
        vals = [v for _, pts in series for _, v in pts]
        top = max(vals) if vals else 1.0
        top = top if top > 0 else 1.0
        out.append(f'<line x1="{gx}" y1="{gy + gh}" x2="{gx + gw}" y2="{gy + gh}" stroke="#999"/>')
        out.append(f'<text x="{gx - 4}" y="{gy + 4}" text-anchor="end">{esc(fmt(top, unit))}</text>')
        out.append(f'<text x="{gx - 4}" y="{gy + gh}" text-anchor="end">0</text>')
        if not series:
            out.append(f'<text x="{gx + gw / 2}" y="{gy + gh / 2}" text-anchor="middle" fill="#999">no data</text>')
        for j, (legend, pts) in enumerate(series[:6]):
            c = COLOURS[j % len(COLOURS)]
            path = " ".join(
                f"{gx + (t - start) / (end - start) * gw:.1f},{gy + gh - v / top * gh:.1f}" for t, v in pts
            )
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{path}"/>')
            ly = gy + gh + 16 + j * 12
            last = fmt(pts[-1][1], unit)
            out.append(f'<rect x="{gx}" y="{ly - 8}" width="10" height="3" fill="{c}"/>')
            out.append(f'<text x="{gx + 14}" y="{ly - 4}">{esc(legend)}  (last {esc(last)})</text>')
    out.append("</svg>")
    return "\n".join(out)


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rules")
    r.add_argument("dashboards", nargs="+")
    for name in ("check", "plot"):
        c = sub.add_parser(name)
        c.add_argument("--prometheus", required=True)
        c.add_argument("--namespace", required=True)
        c.add_argument("--fleet", required=True)
        c.add_argument("dashboards", nargs="+")
        if name == "plot":
            c.add_argument("--minutes", type=float, default=10)
            c.add_argument("--out", required=True)
    args = ap.parse_args()
    return {"rules": cmd_rules, "check": cmd_check, "plot": cmd_plot}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
