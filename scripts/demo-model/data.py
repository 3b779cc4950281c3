"""KJV text extraction and chapter-level train/held-out split.

The text comes from Debian's `bible-kjv-text` package (public domain), read with the
`bible` program from Debian's `bible-kjv` package (its data file is compressed in a
private format). Output of `bible -l100000 gen1:1-rev22:21` is one chapter heading
("Genesis 1") followed by one verse per line ("  1 In the beginning ...").

We normalise it to:

    Genesis 1\n
    \n
    1 In the beginning God created the heaven and the earth.\n
    2 And the earth was without form, ...\n
    \n
    Genesis 2\n
    ...

Split: chapters are numbered 0..1188 in canonical order; chapter i is held out when
i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 (every 16th chapter); all others are training text.
"""
import subprocess

HOLDOUT_EVERY = 16
COPYRIGHT_FILE = "/usr/share/doc/bible-kjv-text/copyright"


def read_kjv_chapters():
    """Return a list of (heading, [verse lines]) in canonical order."""
    out = subprocess.run(
        ["bible", "-l100000", "gen1:1-rev22:21"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=True, cwd="/",
    ).stdout.decode("ascii")
    chapters = []
    for line in out.split("\n"):
        s = line.strip()
        if not s:
            continue
        if line.startswith(" "):
            # verse line: "  12 text"
            num, _, text = s.partition(" ")
            assert num.isdigit(), line
            chapters[-1][1].append(f"{num} {text.strip()}")
        else:
            chapters.append((s, []))
    assert len(chapters) == 1189, len(chapters)
    assert sum(len(v) for _, v in chapters) == 31102
    return chapters


def chapter_text(heading, verses):
    return heading + "\n\n" + "\n".join(verses) + "\n"


def split_texts():
    """Return (train_text, heldout_text, info)."""
    chapters = read_kjv_chapters()
    train, held = [], []
    held_names = []
    for i, (h, v) in enumerate(chapters):
        if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1:
            held.append(chapter_text(h, v))
            held_names.append(h)
        else:
            train.append(chapter_text(h, v))
    train_text = "\n".join(train)
    held_text = "\n".join(held)
    info = {
        "source": "Debian bible-kjv-text (via `bible -l100000 gen1:1-rev22:21`)",
        "n_chapters": len(chapters),
        "n_train_chapters": len(train),
        "n_heldout_chapters": len(held),
        "heldout_rule": f"chapter index i (0-based, canonical order) with i % {HOLDOUT_EVERY} == {HOLDOUT_EVERY - 1}",
        "heldout_chapters": held_names,
        "train_bytes": len(train_text.encode()),
        "heldout_bytes": len(held_text.encode()),
    }
    return train_text, held_text, info


def copyright_statement():
    """The KJV text statement from the package's copyright file."""
    with open(COPYRIGHT_FILE, encoding="utf-8") as f:
        txt = f.read()
    start = txt.index("The copyright for the King James Version")
    end = txt.index("\n\n", start)
    return " ".join(txt[start:end].split())


if __name__ == "__main__":
    tr, he, info = split_texts()
    print({k: v for k, v in info.items() if k != "heldout_chapters"})
    print(he[:300])
    print(copyright_statement())
