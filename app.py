"""Start the web chat: ``python app.py [--host H] [--port N] [--corpus DIR] [--index DIR]``.

``--backend milvus --uri URI`` retrieves passages from a Milvus collection
(a ``.db`` file for milvus-lite, or http(s)://host:port for a server).

The options are those of ``qa serve``, parsed by the same code, so the two
cannot drift apart; ``qa.cli`` hands over to :func:`qa.web.app.serve`.
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
