"""report - bench/run's results (a dict, also saved as results.json) as
the Markdown of bench/RESULTS.md.  render(R, charts) -> str.  charts(R,
dir) draws the figures as SVG files with matplotlib (Debian
python3-matplotlib; without it there are no charts, the tables stay):
msg/s per relay and size with each round's points, the latency
percentiles, and the workers scaling.

    python3 bench/report.py results.json [CHARTDIR] > RESULTS.md
        # re-render; with CHARTDIR the charts are written there and the
        # page links them as CHARTDIR/NAME.svg
"""

import json
import os
import sys


def _f(v, fmt="%.1f", none="n/a"):
    if v is None:
        return none
    return fmt % v


def _ratio(a, b, fmt="%.2f×"):
    if a is None or b is None or not b:
        return "n/a"
    return fmt % (a / float(b))


def _get(R, relay, *path):
    v = R.get("relays", {}).get(relay)
    for p in path:
        if not isinstance(v, dict):
            return None
        v = v.get(p)
    return v


def _size_name(s):
    s = int(s)
    return "%d KiB" % (s // 1024) if s % 1024 == 0 else "%d B" % s


def _faster_postfix(R, key):
    """(name, msg/s) of the Postfix configuration with more msg/s at
    key (a size, or "SIZE@SESSIONS"), from this run; (None, None)."""
    best = (None, None)
    for name in ("Postfix", "Postfix-reuse"):
        v = _get(R, name, key, "msgs_per_s")
        if v is not None and (best[1] is None or v > best[1]):
            best = (name, v)
    return best


def _worst_stall(R, relay, key):
    """(worst p99.9 ms, worst max ms) over the rounds of one run key."""
    rs = _get(R, relay, key, "rounds") or []
    ls = [r["loop_stall"] for r in rs if r.get("loop_stall")]
    if not ls:
        ls = [x for x in [_get(R, relay, key, "loop_stall")] if x]
    if not ls:
        return None, None
    return (max(x.get("p999_ms") or 0 for x in ls),
            max(x.get("max_ms") or 0 for x in ls))


# ---- charts -----------------------------------------------------------------

CHART_RELAYS = ("danerelay", "Postfix", "Postfix-reuse")


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display), or None."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    # the same results give the same SVG bytes (ids, no date)
    plt.rcParams["svg.hashsalt"] = "danerelay-bench"
    plt.rcParams["svg.fonttype"] = "none"
    return plt


def _round_values(R, relay, key, *path):
    """Each round's value of path (msgs_per_s, ...) at key, in order."""
    out = []
    for r in _get(R, relay, key, "rounds") or []:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if v is not None:
            out.append(float(v))
    return out


def _save(plt, fig, outdir, name, out, title):
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, name), format="svg",
                metadata={"Date": None})
    plt.close(fig)
    out.append((title, name))


def charts(R, outdir):
    """Draw R's charts into outdir as SVG -> [(title, file name)] of the
    ones drawn ([] without matplotlib or data)."""
    plt = _pyplot()
    if plt is None:
        return []
    os.makedirs(outdir, exist_ok=True)
    out = []
    sizes = [str(s) for s in R.get("args", {}).get("sizes", [])]

    # msg/s per relay and size: the median as a bar, each round a point
    relays = [r for r in CHART_RELAYS if any(
        _get(R, r, s, "msgs_per_s") is not None for s in sizes)]
    if relays:
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(relays)
        labelled = False
        for i, r in enumerate(relays):
            xs = [j + (i - (len(relays) - 1) / 2.0) * width
                  for j in range(len(sizes))]
            ax.bar(xs, [_get(R, r, s, "msgs_per_s") or 0 for s in sizes],
                   width * 0.9, label=r)
            for x, s in zip(xs, sizes):
                pts = _round_values(R, r, s, "msgs_per_s")
                if pts:
                    ax.plot([x] * len(pts), pts, "o", color="black",
                            markersize=4, label=None if labelled else
                            "each round", gid="rounds-%s-%s" % (r, s))
                    labelled = True
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([_size_name(s) for s in sizes])
        ax.set_ylabel("messages/s, end to end")
        ax.set_title("Throughput by relay and message size (median of %d "
                     "round(s))" % max([len(_round_values(
                         R, r, s, "msgs_per_s")) for r in relays
                         for s in sizes] + [1]))
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        _save(plt, fig, outdir, "throughput.svg", out,
              "msg/s per relay and size, each round's points")

    # latency percentiles: 250 -> sink, paced and under load
    if relays:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, (key, what) in zip(axes, (
                ("latency_paced", "paced (cached connections)"),
                ("latency_load", "under full load"))):
            for i, r in enumerate(relays):
                for k, q in enumerate(("p50", "p99")):
                    xs = [j + (2 * i + k - len(relays) + 0.5) * 0.8 /
                          (2 * len(relays)) for j in range(len(sizes))]
                    vals = [_get(R, r, s, key, q + "_ms") for s in sizes]
                    ax.bar(xs, [v if v else 0 for v in vals],
                           0.8 / (2 * len(relays)) * 0.9,
                           label="%s %s" % (r, q), color="C%d" % i,
                           alpha=0.55 if q == "p50" else 1.0,
                           hatch="//" if q == "p99" else None)
            ax.set_yscale("log")
            ax.set_xticks(range(len(sizes)))
            ax.set_xticklabels([_size_name(s) for s in sizes])
            ax.set_title("latency 250 -> sink, " + what)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("ms (log scale)")
        axes[0].legend(fontsize="small", loc="upper left")
        _save(plt, fig, outdir, "latency.svg", out,
              "latency percentiles (p50, p99), paced and under load")

    # workers scaling: workers = N against workers = 1 at one size
    ss = str(R.get("scaling_size", 4096))
    w1 = _get(R, "danerelay-w1", ss, "msgs_per_s")
    wn = _get(R, "danerelay", ss, "msgs_per_s")
    if w1 is not None and wn is not None:
        n = _get(R, "danerelay", ss, "workers") or "N"
        fig, ax = plt.subplots(figsize=(5, 4))
        labelled = False
        for x, relay in enumerate(("danerelay-w1", "danerelay")):
            ax.bar([x], [_get(R, relay, ss, "msgs_per_s")], 0.6)
            pts = _round_values(R, relay, ss, "msgs_per_s")
            if pts:
                ax.plot([x] * len(pts), pts, "o", color="black",
                        markersize=4, label=None if labelled else
                        "each round", gid="rounds-%s" % relay)
                labelled = True
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["workers = 1", "workers = %s" % n])
        ax.set_ylabel("messages/s, end to end, %s" % _size_name(ss))
        ax.set_title("Scaling: %.2fx (target 1.5x)" % (wn / w1))
        ax.axhline(1.5 * w1, color="grey", linestyle="--",
                   label="1.5x workers = 1")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        _save(plt, fig, outdir, "scaling.svg", out,
              "event-loop workers: msg/s with workers = %s and = 1" % n)
    return out


def _status(ok):
    if ok is None:
        return "n/a"
    return "met" if ok else "not met"


def targets(R):
    """The throughput targets' figures from this run: a list of dicts
    {what, value, target, status, line}; status is "met", "not met",
    "n/a" (not measured) or "reported" (the target asks for the figure, not a
    number)."""
    a = R["args"]
    sizes = [str(s) for s in a["sizes"]]
    out = []

    def add(what, value, target, status):
        line = "%s = %s, target %s: %s" % (what, value, target, status)
        for u, t in (("≥", ">="), ("≤", "<="), ("→", "->")):
            line = line.replace(u, t)
        out.append({"what": what, "value": value, "target": target,
                    "status": status, "line": line})

    def vs_postfix(key, label, target_note=""):
        d = _get(R, "danerelay", key, "msgs_per_s")
        name, p = _faster_postfix(R, key)
        if d is None or p is None:
            add("danerelay / faster Postfix msg/s, " + label, "n/a",
                "≥ 2.0" + target_note, "n/a")
            return
        r = d / p
        add("danerelay / faster Postfix msg/s, " + label,
            "%.2f (%.0f / %.0f msg/s, %s)" % (r, d, p, name),
            "≥ 2.0" + target_note, _status(r >= 2.0))

    for s in sizes:
        vs_postfix(s, "%s, %d sessions" % (_size_name(s), a["sessions"]))
    fpm = (R.get("fsyncs_per_msg") or {}).get("danerelay")
    add("fsync calls per relayed message (danerelay, strace, %d sessions)"
        % a["sessions"], _f(fpm, "%.2f"), "≤ 1.0",
        _status(None if fpm is None else fpm <= 1.0))
    for s in sizes:
        v = _get(R, "danerelay", s, "latency_paced", "p99_ms")
        add("paced latency p99 (250 → sink), %s" % _size_name(s),
            _f(v, "%.2f ms"), "< 10 ms",
            _status(None if v is None else v < 10))
    ss = str(R.get("scaling_size", 4096))
    wn = _get(R, "danerelay", ss, "msgs_per_s")
    w1 = _get(R, "danerelay-w1", ss, "msgs_per_s")
    n = _get(R, "danerelay", ss, "workers") or \
        R.get("machine", {}).get("nproc") or "N"
    what = "workers=%s / workers=1 msg/s, %s" % (n, _size_name(ss))
    if wn is None or w1 is None or not w1:
        add(what, "n/a", "≥ 1.5", "n/a")
    else:
        add(what, "%.2f (%.0f / %.0f msg/s)" % (wn / w1, wn, w1), "≥ 1.5",
            _status(wn / w1 >= 1.5))
    keys = [(s, "%s, %d sessions" % (_size_name(s), a["sessions"]))
            for s in sizes]
    ms = a.get("many_sessions")
    for s in R.get("many_sizes") or []:
        k = "%s@%s" % (s, ms)
        if _get(R, "danerelay", k):
            keys.append((k, "%s, %d sessions" % (_size_name(s), ms)))
    for k, label in keys:
        p999, mx = _worst_stall(R, "danerelay", k)
        add("event loop stall p99.9 / max, %s" % label,
            "n/a" if p999 is None else "%.1f ms / %.1f ms" % (p999, mx),
            "none set (no loop blocks on disk or CPU work)",
            "n/a" if p999 is None else "reported")
    af = R.get("auth_flood") or {}
    v = af.get("ehlo_p99_ms")
    add("EHLO p99 during the AUTH flood (%s clients)" % af.get("clients",
                                                             "?"),
        _f(v, "%.2f ms"), "< 20 ms", _status(None if v is None else v < 20))
    for s in R.get("many_sizes") or []:
        k = "%s@%s" % (s, ms)
        if _get(R, "danerelay", k):
            vs_postfix(k, "%s, %d sessions" % (_size_name(s), ms),
                       " (the target is set at %d sessions; for reference)" %
                       a["sessions"])
    return out


def render(R, charts=()):
    """The page; charts: [(title, path)] of SVG files to embed (charts())
    below the tables."""
    a = R["args"]
    m = R["machine"]
    sizes = [str(s) for s in a["sizes"]]
    pf = "Postfix" in R.get("relays", {})
    out = []
    w = out.append
    w("# danerelay benchmarks\n")
    w("Written by `bench/run%s` on %s; every figure below comes from that "
      "run.%s\n" % (" --quick" if a.get("quick") else "", m["date"],
                    " **--quick: tiny counts, the figures only prove the "
                    "harness works.**" if a.get("quick") else ""))
    w("## Machine\n")
    w("| | |\n| --- | --- |")
    w("| CPU | %s, %s cores (`nproc`) |" % (m["cpu"].strip(), m["nproc"]))
    w("| memory | %s |" % m["mem"])
    w("| spool disk | %s, mount options `%s` |" % (m["disk"], m["mount"]))
    w("| OS, kernel | %s, Linux %s |" % (m["os"], m["kernel"]))
    w("| danerelay | %s, `%s` |" % (m["danerelay"], m["cflags"]))
    w("| Postfix | %s (Debian package) |" % m["postfix"])
    w("| OpenSSL, unbound | %s; %s |" % (m["openssl"], m["unbound"]))
    w("| load average at start / end | %s / %s |" % (
        " ".join(m["loadavg_start"]), " ".join(m.get("loadavg_end", []))))
    w("| run time | %.0f s |" % R.get("duration_s", 0))
    if a.get("note"):
        w("\n%s\n" % a["note"])
    w("")
    w("## Set-up\n")
    w("Everything runs on this one machine inside a network namespace of "
      "its own (`ip netns`; loopback only, nothing leaves it) and a private "
      "mount namespace. A signed DNS world (NSD, `ldns-signzone`, "
      "ECDSA P-256) has 50 destination domains `d0.test` .. `d49.test`, "
      "each with `MX 10 mx` on its own 127.0.110.x address and "
      "`_25._tcp.mx TLSA 3 1 1` of the sink's certificate (TTL 3600). "
      "Both relays deliver to port 25 of those addresses, where the sink "
      "(`bench/drb_sink.c`: C, one thread per connection, STARTTLS, "
      "records one line per message, no fsync) listens.\n")
    nw = _get(R, "danerelay", sizes[0], "workers") if sizes else None
    w("- **danerelay**: `danerelayd` with `default_policy = dane`, its own "
      "libunbound validating against the rig's trust anchor, `workers = "
      "auto` (%s event loops here), defaults otherwise "
      "(`max_connections = 100`, `max_connections_per_destination = 10`, "
      "connection cache)." % (nw or "one per CPU:"))
    if _get(R, "danerelay-w1", str(R.get("scaling_size", 4096))):
        w("- **Scaling**: a second danerelayd, the same but `workers = 1`, "
          "runs the %s throughput test in every round right next to the "
          "main danerelay's (its neighbour in the relay order, which "
          "alternates between rounds); workers = N / workers = 1 compares "
          "the two. Load generator and sink run on the same cores." %
          _size_name(R.get("scaling_size", 4096)))
    if R.get("many_sizes") and a.get("many_sessions"):
        w("- **%d sessions**: after the rounds, one more throughput run per "
          "relay (both Postfix configurations) with %d parallel sessions "
          "at %s, without the paced part." % (
              a["many_sessions"], a["many_sessions"],
              ", ".join(_size_name(x) for x in R["many_sizes"])))
    w("- **Postfix**: Debian's package as a private instance (own "
      "`main.cf`/`master.cf`, queue directory, no chroot) with "
      "`smtp_tls_security_level = dane`, `smtp_dns_support_level = "
      "dnssec`, `smtp_host_lookup = dns`, resolving through Debian's "
      "`unbound` daemon (same stub zones and trust anchor as danerelay's "
      "libunbound, AD bit trusted via `options trust-ad`), "
      "`smtp_connection_cache_destinations` = the 50 domains and "
      "`smtp_tls_connection_reuse = yes` (through `tlsproxy`; without it "
      "Postfix opens a new TLS connection for every message), defaults "
      "otherwise (`default_process_limit = 100`, "
      "`default_destination_concurrency_limit = 20`).")
    w("- **Load**: `bench/drb_load.c`, %d parallel SMTP sessions "
      "(PIPELINING), %d messages per size; message *i* goes to "
      "`u<k>@d<i mod 50>.test` (50 domains x %d recipients per domain, "
      "one recipient per message). Durable queues on both sides: danerelay "
      "answers 250 after the fdatasync of its spool journal, which holds "
      "the whole message file (data and envelope) and is shared by the "
      "messages committed together (the message file itself is fsync'ed "
      "only if it is still queued when the journal is checkpointed), "
      "Postfix after its cleanup fsyncs the queue file (it never fsyncs a "
      "directory)." % (
          a["sessions"], a["messages"], 10))
    w("- **msg/s** is end to end: messages arrived at the sink / (last "
      "arrival - start of the load). **Latency** is the sink's arrival "
      "time minus the time the client got its 250, per Message-ID: under "
      "the full load, and paced (one session, %.0f msg/s, %d messages, "
      "right after the load: warm DNS, cached connections)." % (
          a["latency_rate"], a["latency_messages"]))
    w("- **CPU per message**: utime+stime of the relay's processes over "
      "the throughput run / messages (Postfix: the master, every child "
      "alive or reaped). danerelay's figure includes its in-process "
      "resolver (libunbound); Postfix's is shown without and with its "
      "unbound daemon's CPU.")
    w("- **Memory**: RSS and PSS summed over the relay's processes, "
      "sampled every 0.5 s. Postfix runs one `smtpd` process per inbound "
      "session, so the RSS sum counts its shared pages once per process; "
      "PSS is the fair figure for it.")
    w("- **Idle sessions**: %d sessions that each did EHLO and then wait; "
      "memory before/after, scaled to 1,000. **Concurrent sessions**: "
      "that many sessions opened one after another and held, each must "
      "get its banner and 250 for EHLO and still answer NOOP at the end "
      "(danerelay: %d; Postfix: %d — it forks one `smtpd` process per "
      "session, about 1.2 MiB PSS each, so 10,000 would take ~12 GiB and "
      "minutes of forking on this shared machine; its limit was not "
      "searched)." % (
          a["idle"], a["max_sessions"], a["postfix_max_sessions"]))
    w("")

    w("## Results\n")
    tg = R.get("targets") or targets(R)
    w("### Throughput targets\n")
    w("Every figure from this one run (medians over the rounds; the "
      "faster Postfix is whichever configuration had more msg/s at that "
      "size in this run; loop stalls: the worst round).\n")
    w("| figure | measured | target | |")
    w("| --- | ---: | --- | --- |")
    for t in tg:
        st = t["status"]
        w("| %s | %s | %s | %s |" % (t["what"], t["value"], t["target"],
                                     "**%s**" % st if st in (
                                         "met", "not met") else st))
    w("")
    w("### All figures\n")
    reuse = "Postfix-reuse" in R.get("relays", {})
    rows = []

    def row(label, d, p, ratio="", target="", pr=""):
        rows.append([label, d, p, ratio, target] + ([pr] if reuse else []))

    sink = R.get("sink", {})
    for s in sizes:
        v = (sink.get(s) or sink.get(int(s)) or {}).get("msgs_per_s")
        row("sink capacity, %s (STARTTLS, %d sessions)" % (
            _size_name(s), a["sessions"]), "%s msg/s" % _f(v, "%.0f"), "",
            "", "must exceed both relays")
    def rounds(relay, s, key, fmt="%.1f"):
        v = _get(R, relay, s, key)
        rs = _get(R, relay, s, "rounds") or []
        if v is None or len(rs) < 2:
            return _f(v, fmt)
        return "%s (%s)" % (_f(v, fmt), ", ".join(_f(r.get(key), fmt)
                                                  for r in rs))
    nrounds = max([len(_get(R, r, s, "rounds") or []) for r in
                   ("danerelay", "Postfix") for s in sizes] or [1])
    for s in sizes:
        d = _get(R, "danerelay", s, "msgs_per_s")
        p = _get(R, "Postfix", s, "msgs_per_s")
        fname, fp = _faster_postfix(R, s)
        met = ""
        if d and fp:
            met = " — %.2f× %s: **%s**" % (
                d / fp, "with TLS reuse" if fname == "Postfix-reuse" else
                "Postfix", "met" if d >= 2 * fp else "not met")
        row("**end-to-end msg/s, %s**%s" % (
            _size_name(s), " (median; each round)" if nrounds > 1 else ""),
            rounds("danerelay", s, "msgs_per_s"),
            rounds("Postfix", s, "msgs_per_s"),
            _ratio(d, p), "≥ 2× the faster Postfix" + met,
            rounds("Postfix-reuse", s, "msgs_per_s"))
    ss = str(R.get("scaling_size", 4096))
    w1 = _get(R, "danerelay-w1", ss, "msgs_per_s")
    if w1 is not None:
        wn = _get(R, "danerelay", ss, "msgs_per_s")
        n = _get(R, "danerelay", ss, "workers") or "N"
        met = ""
        if wn and w1:
            met = " — %.2f×: **%s**" % (wn / w1, "met" if wn >= 1.5 * w1
                                        else "not met")
        row("end-to-end msg/s, %s, danerelay with `workers = 1`%s" % (
            _size_name(ss), " (median; each round)" if nrounds > 1 else ""),
            rounds("danerelay-w1", ss, "msgs_per_s"), "n/a", "",
            "workers = %s ≥ 1.5× workers = 1%s" % (n, met), "n/a")
        ls = _get(R, "danerelay-w1", ss, "loop_stall") or {}
        if ls:
            p999, mx = _worst_stall(R, "danerelay-w1", ss)
            row("event loop stall p99.9 / max, %s run, `workers = 1` "
                "(worst round)" % _size_name(ss), "%s / %s" % (
                    _f(p999, "%.1f ms"), _f(mx, "%.1f ms")), "n/a", "", "",
                "n/a")
    ms = a.get("many_sessions")
    for s in R.get("many_sizes") or []:
        k = "%s@%s" % (s, ms)
        if not any(_get(R, r, k) for r in ("danerelay", "Postfix",
                                           "Postfix-reuse")):
            continue
        d = _get(R, "danerelay", k, "msgs_per_s")
        p = _get(R, "Postfix", k, "msgs_per_s")
        fname, fp = _faster_postfix(R, k)
        met = ""
        if d and fp:
            met = "%.2f× the faster Postfix (the 2× target is at %d sessions)" % (
                d / fp, a["sessions"])
        row("**end-to-end msg/s, %s, %s sessions** (one run)" % (
            _size_name(s), ms), _f(d), _f(p), _ratio(d, p), met,
            _f(_get(R, "Postfix-reuse", k, "msgs_per_s")))
        d = _get(R, "danerelay", k, "cpu_ms_per_msg")
        p = _get(R, "Postfix", k, "cpu_ms_per_msg")
        row("CPU time per message, %s, %s sessions" % (_size_name(s), ms),
            _f(d, "%.2f ms"), _f(p, "%.2f ms"), _ratio(d, p), "",
            _f(_get(R, "Postfix-reuse", k, "cpu_ms_per_msg"), "%.2f ms"))
        ls = _get(R, "danerelay", k, "loop_stall") or {}
        if ls:
            row("event loop stall p99.9 / max, %s, %s sessions" % (
                _size_name(s), ms), "%s / %s" % (
                    _f(ls.get("p999_ms"), "%.1f ms"),
                    _f(ls.get("max_ms"), "%.1f ms")), "n/a", "", "", "n/a")
    for s in sizes:
        row("disk just before the run: commits/s, 1 writer, %s" %
            _size_name(s), rounds("danerelay", s, "disk_commits_per_s",
                                  "%.0f"),
            rounds("Postfix", s, "disk_commits_per_s", "%.0f"), "", "",
            rounds("Postfix-reuse", s, "disk_commits_per_s", "%.0f"))
    for s in sizes:
        d = _get(R, "danerelay", s, "accept_per_s")
        p = _get(R, "Postfix", s, "accept_per_s")
        row("accepted msg/s (client's 250s), %s" % _size_name(s), _f(d),
            _f(p), _ratio(d, p), "",
            _f(_get(R, "Postfix-reuse", s, "accept_per_s")))
    for s in sizes:
        for q in ("p50", "p99"):
            d = _get(R, "danerelay", s, "latency_paced", q + "_ms")
            p = _get(R, "Postfix", s, "latency_paced", q + "_ms")
            pr = _get(R, "Postfix-reuse", s, "latency_paced", q + "_ms")
            tgt = ""
            if q == "p99":
                tgt = "< 10 ms (cached connection)"
                if d is not None:
                    tgt += " — **%s**" % ("met" if d < 10 else "not met")
            row("latency 250→sink %s, paced, %s" % (q, _size_name(s)),
                _f(d, "%.2f ms"), _f(p, "%.2f ms"), _ratio(d, p), tgt,
                _f(pr, "%.2f ms"))
    for s in sizes:
        for q in ("p50", "p99"):
            d = _get(R, "danerelay", s, "latency_load", q + "_ms")
            p = _get(R, "Postfix", s, "latency_load", q + "_ms")
            pr = _get(R, "Postfix-reuse", s, "latency_load", q + "_ms")
            row("latency 250→sink %s, under full load, %s" % (
                q, _size_name(s)), _f(d, "%.0f ms"), _f(p, "%.0f ms"),
                _ratio(d, p), "", _f(pr, "%.0f ms"))
    for s in sizes:
        d = _get(R, "danerelay", s, "cpu_ms_per_msg")
        p = _get(R, "Postfix", s, "cpu_ms_per_msg")
        pr = _get(R, "Postfix-reuse", s, "cpu_ms_per_msg")
        row("CPU time per message, %s" % _size_name(s), _f(d, "%.2f ms"),
            _f(p, "%.2f ms"), _ratio(d, p), "", _f(pr, "%.2f ms"))
        mv = _get(R, "danerelay-milter", s, "msgs_per_s")
        mc = _get(R, "danerelay-milter", s, "cpu_ms_per_msg")
        if mv is not None:      # bench/run's milter run (issue #25)
            dv = _get(R, "danerelay", s, "msgs_per_s")
            row("msg/s with OpenDKIM as the one milter, %s" %
                _size_name(s), _f(mv, "%.0f"), "n/a", "",
                "%s without milters" % _f(dv, "%.0f") if dv is not None
                else "", "n/a")
            row("CPU time per message with OpenDKIM as the one milter "
                "(danerelay + opendkim), %s" % _size_name(s),
                _f(mc, "%.2f ms"), "n/a", "", "+%s over no milter" %
                _f(mc - d, "%.2f ms") if d is not None and mc is not None
                else "", "n/a")
        k = _get(R, "danerelay-dkim", s, "cpu_ms_per_msg")
        if k is not None:       # bench/run's DKIM run (issue #16)
            row("CPU time per message with DKIM signing (RSA-2048 + "
                "Ed25519), %s" % _size_name(s), _f(k, "%.2f ms"), "n/a",
                "", "+%s over unsigned" % _f(k - d, "%.2f ms")
                if d is not None else "", "n/a")
    for s in sizes:
        def withres(relay):
            c = _get(R, relay, s, "cpu_s")
            if c is None:
                return None
            return (c + (_get(R, relay, s, "resolver_cpu_s") or 0)) * \
                1000.0 / max(_get(R, relay, s, "arrived") or 1, 1)
        d, p, pr = withres("danerelay"), withres("Postfix"), \
            withres("Postfix-reuse")
        row("CPU time per message with the resolver's, %s" % _size_name(s),
            _f(d, "%.2f ms"), _f(p, "%.2f ms"), _ratio(d, p), "",
            _f(pr, "%.2f ms"))
    for s in sizes:
        for k, what in (("peak_rss_kb", "RSS"), ("peak_pss_kb", "PSS")):
            d = _get(R, "danerelay", s, k)
            p = _get(R, "Postfix", s, k)
            pr = _get(R, "Postfix-reuse", s, k)
            row("peak %s (sum over processes), %s run" % (
                what, _size_name(s)), _f(d and d / 1024.0, "%.1f MiB"),
                _f(p and p / 1024.0, "%.1f MiB"), _ratio(d, p), "",
                _f(pr and pr / 1024.0, "%.1f MiB"))
    for s in sizes:
        d = _get(R, "danerelay", s, "sink_connections")
        p = _get(R, "Postfix", s, "sink_connections")
        pr = _get(R, "Postfix-reuse", s, "sink_connections")
        row("TLS connections to the sink, %s run" % _size_name(s),
            _f(d, "%d"), _f(p, "%d"), _ratio(d, p), "", _f(pr, "%d"))
    for s in sizes:
        ls = _get(R, "danerelay", s, "loop_stall") or {}
        if ls:
            row("event loop stall p99.9 / max, %s run" % _size_name(s),
                "%s / %s" % (_f(ls.get("p999_ms"), "%.1f ms"),
                             _f(ls.get("max_ms"), "%.1f ms")),
                "n/a", "", "no loop blocks on disk or CPU work")
    af = R.get("auth_flood") or {}
    if af.get("ehlo_p99_ms") is not None:
        v = af["ehlo_p99_ms"]
        row("**EHLO p99 during the AUTH flood** (%d clients guessing "
            "yescrypt passwords over STARTTLS, %.0f wrong passwords/s; "
            "without the flood %.2f ms)" % (
                af["clients"], af.get("guesses_per_s", 0),
                af.get("quiet_p99_ms", 0)), _f(v, "%.2f ms"), "n/a", "",
            "< 20 ms — **%s**" % ("met" if v < 20 else "not met"))
    fpm = R.get("fsyncs_per_msg", {})
    if fpm:
        d, p = fpm.get("danerelay"), fpm.get("Postfix")
        row("fsync calls per relayed message (strace, %d sessions)" %
            a["sessions"], _f(d), _f(p), _ratio(d, p),
            "≤ 1.0" + ("" if d is None else " — **%s**" % (
                "met" if d <= 1.0 else "not met")))
    d = _get(R, "danerelay", "sessions", "rss_per_1000_kb")
    p = _get(R, "Postfix", "sessions", "rss_per_1000_kb")
    met = ""
    if d is not None:
        met = " — **%s**" % ("met" if d < 64 * 1000 else "not met")
    row("RSS per 1,000 idle inbound sessions", _f(d and d / 1024.0,
        "%.1f MiB"), _f(p and p / 1024.0, "%.1f MiB"), _ratio(d, p),
        "< 64 KiB per session (62.5 MiB per 1,000)" + met)
    d = _get(R, "danerelay", "sessions", "pss_per_1000_kb")
    p = _get(R, "Postfix", "sessions", "pss_per_1000_kb")
    row("PSS per 1,000 idle inbound sessions", _f(d and d / 1024.0,
        "%.1f MiB"), _f(p and p / 1024.0, "%.1f MiB"), _ratio(d, p))

    def maxs(relay):
        mx = _get(R, relay, "sessions", "max")
        if not mx:
            return "n/a"
        return "%d of %d%s" % (min(mx["ok"], mx["alive"]), mx["n"],
                               "" if mx["failed"] == 0 and mx["dead"] == 0
                               else " (%d failed, %d dead)" % (
                                   mx["failed"], mx["dead"]))
    dmx = _get(R, "danerelay", "sessions", "max") or {}
    met = ""
    if dmx:
        met = " — **%s**" % ("met" if dmx.get("n", 0) >= 10000 and
                             dmx["failed"] == 0 and dmx["dead"] == 0
                             else "not met")
    row("concurrent inbound sessions held without error", maxs("danerelay"),
        maxs("Postfix") if pf else "n/a", "", "10,000" + met)
    hdr = ["", "danerelay", "Postfix", "danerelay/Postfix", "target"]
    if reuse:
        hdr.append("Postfix, TLS reuse")
    w("| " + " | ".join(hdr) + " |")
    w("| --- | ---: | ---: | ---: | --- |" + (" ---: |" if reuse else ""))
    for r in rows:
        w("| " + " | ".join(r) + " |")
    w("")

    if any(_get(R, "danerelay", s, "loop_stall") for s in sizes):
        w("Event loop stalls: danerelayd's `danerelay_loop_stall_seconds` "
          "histogram (a 5 ms timer and how late it runs, i.e. how long a "
          "callback kept the loop from reacting), scraped before the load "
          "and after the last arrival; p99.9 interpolated within its "
          "bucket like Prometheus' `histogram_quantile()`, max from "
          "`danerelay_loop_stall_max_seconds` since that daemon started. "
          "EHLO during the AUTH flood: one allowed client's EHLO round "
          "trips on one plain session every 10 ms while the flood runs "
          "(in another process).\n")
    if charts:
        w("### Charts\n")
        w("The figures of the tables above, drawn by `bench/report.py` "
          "(matplotlib).\n")
        for title, path in charts:
            w("![%s](%s)\n" % (title, path))
    w("### Physical limits of this machine\n")
    fs = R.get("fsync", {})
    for k in sorted(fs, key=lambda x: int(x)):
        v = fs[k]
        w("- fsync on the spool's file system, %s writer thread(s): "
          "**%.0f commits/s** (write 4 KiB, fsync, rename, fsync the "
          "directory) = %.0f fsyncs/s." % (k, v["commits_per_s"],
                                           v["fsyncs_per_s"]))
    t = R.get("tls")
    if t:
        w("- TLS handshakes with the sink's certificate (%s): %.0f/s "
          "wall with client and server on the two cores; per core: "
          "**%.0f/s server side**, %.0f/s client side." % (
              t["cipher"], t["wall_per_s"], t["server_per_core_s"],
              t["client_per_core_s"]))
    w("")
    prof = R.get("profile")
    if prof:
        w("### Where danerelay's time goes\n")
        if prof.get("error"):
            w("Profile incomplete: %s\n" % prof["error"])
        if prof.get("perf_dso"):
            w("`perf record -e cpu-clock -g` on danerelayd while it relayed "
              "%d messages of %s (CPU samples by binary/library):\n" % (
                  prof["messages"], _size_name(prof["size"])))
            w("```")
            out.extend(prof["perf_dso"])
            w("```")
        if prof.get("perf_top"):
            w("\nHottest functions (self time, ≥ 0.7% of samples):\n")
            w("```")
            out.extend(prof["perf_top"])
            w("```")
        if prof.get("strace"):
            w("\nWall-clock time inside system calls (`strace -c -w -f`, "
              "%d messages, every thread of danerelayd: the event loops, "
              "the io pool that makes the fsyncs and the cpu pool, so "
              "futex and epoll_wait are mostly threads waiting for "
              "work):\n" % prof.get("strace_messages", 0))
            w("```")
            out.extend(prof["strace"])
            w("```")
        w("")
    if R.get("errors"):
        w("## Errors in this run\n")
        for e in R["errors"]:
            w("- %s" % e)
        w("")
    w("Raw numbers: `results.json` in the run's work directory; "
      "`python3 bench/report.py results.json` renders this page again.\n")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        R = json.load(f)
    cs = []
    if len(sys.argv) > 2:
        cs = [(t, os.path.join(sys.argv[2], n))
              for t, n in charts(R, sys.argv[2])]
    sys.stdout.write(render(R, cs))
