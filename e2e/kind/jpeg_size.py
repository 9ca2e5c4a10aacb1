"""Prints "WIDTH HEIGHT" of a JPEG file from its SOF marker (no imaging library needed)."""
import struct
import sys

data = open(sys.argv[1], "rb").read()
if data[:2] != b"\xff\xd8":
    sys.exit("not a JPEG")
i = 2
while i + 4 <= len(data):
    if data[i] != 0xFF:
        sys.exit("corrupt marker stream")
    marker = data[i + 1]
    length = struct.unpack(">H", data[i + 2 : i + 4])[0]
    if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
        height, width = struct.unpack(">HH", data[i + 5 : i + 9])
        print(width, height)
        sys.exit(0)
    i += 2 + length
sys.exit("no SOF marker")
