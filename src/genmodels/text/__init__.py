"""Word-level language models of the text corpora: RNN, LSTM, GRU, Transformer, n-grams."""
