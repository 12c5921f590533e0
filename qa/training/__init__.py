"""Train the reader on the team's data and XQuAD."""
