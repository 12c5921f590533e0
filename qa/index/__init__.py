"""Split, tag, embed and store a corpus as an index folder; open one that is current."""
