#!/usr/bin/env python3
"""Builds input.zip from entries/*.txt (in name order), as a mediation system would ship it.

Usage: python3 examples/framed-zip/make_zip.py [OUT]   (default: input.zip beside this file)
"""
import pathlib
import sys
import zipfile

here = pathlib.Path(__file__).resolve().parent
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else here / "input.zip"
with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
    for entry in sorted((here / "entries").glob("*.txt")):
        z.write(entry, arcname=entry.name)
print(out)
