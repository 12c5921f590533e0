"""Start the web chat: ``python app.py [--host H] [--port N] [--corpus DIR] [--index DIR]``.

``--backend milvus --uri URI`` retrieves passages from a Milvus collection
(a ``.db`` file for milvus-lite, or http(s)://host:port for a server).

The options are those of ``qa serve``, parsed by the same code, so the two
cannot drift apart; ``qa.cli`` hands over to :func:`qa.web.app.serve`.

A running app follows its index folder: after ``qa index`` updates it, answers
come from the new index within a few seconds, with no restart; ``kill -HUP``
the app's process to have it look at once (qa.index.live).
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
