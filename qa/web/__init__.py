"""The web chat and the formatting shared by the web app and the CLI."""
