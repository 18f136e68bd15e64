"""Write an MR-format corpus (rt-polarity.pos / rt-polarity.neg, latin-1, one sentence a line) from GLUE SST-2.

SST's sentences are the Rotten Tomatoes snippets of Pang & Lee's MR corpus, re-parsed (Socher et al. 2013), so
SST-2's whole sentences (the training file's sentences without its phrases, plus dev.tsv) in MR's layout are a
stand-in for MR where MR itself is not at hand: 7,754 sentences instead of MR's 10,662, labels from SST's
phrase-level annotation instead of the review's rating. It checks that `experiment=sentence_cnn_mr` runs and lands
where Kim's MR figures say; it is not MR, and its numbers are not Kim's table.

    python scripts/mr_proxy_from_sst2.py --sst2-root <folder with train.tsv, dev.tsv> --out mr_proxy
    cnnlab-train experiment=sentence_cnn_mr data.root=mr_proxy data.fold=0
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.data.textsets import whole_sentences


def read_tsv(path: Path) -> "list[tuple[str, int]]":
    """(sentence, label) rows of a GLUE SST-2 file (header `sentence<TAB>label`)."""
    rows = []
    with path.open(encoding="utf-8") as f:
        next(f)
        for line in f:
            text, label = line.rstrip("\n").rsplit("\t", 1)
            rows.append((text.strip(), int(label)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst2-root", type=Path, required=True, help="folder with train.tsv and dev.tsv")
    parser.add_argument("--out", type=Path, required=True, help="folder to write rt-polarity.pos/.neg into")
    args = parser.parse_args()
    rows = read_tsv(args.sst2_root / "train.tsv") + read_tsv(args.sst2_root / "dev.tsv")
    keep = whole_sentences([tuple(text.split()) for text, _ in rows])
    args.out.mkdir(parents=True, exist_ok=True)
    for label, name in ((1, "pos"), (0, "neg")):
        lines = [rows[i][0] for i in keep if rows[i][1] == label]
        data = "".join(f"{text} \n" for text in lines).encode("latin-1", errors="replace")  # MR: trailing space
        (args.out / f"rt-polarity.{name}").write_bytes(data)
        print(f"{args.out / f'rt-polarity.{name}'}: {len(lines):,} sentences")


if __name__ == "__main__":
    main()
