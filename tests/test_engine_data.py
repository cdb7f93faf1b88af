"""Corpus loading, vocabulary and batch streams of the engine (worker.lstm.data)."""
import pytest
import torch

from worker.lstm.data import BatchStream, CorpusError, Vocab, load_corpus, split_text


def test_load_corpus_reads_path_and_bytes(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("hello\nworld\n", "utf-8")
    assert load_corpus(f) == load_corpus(str(f)) == load_corpus(b"hello\nworld\n") == "hello\nworld\n"


def test_invalid_utf8_names_byte_offset():
    with pytest.raises(CorpusError, match="invalid UTF-8 at byte offset 5"):
        load_corpus(b"hello\xff world")


@pytest.mark.parametrize("source", [b"", "missing.txt"])
def test_unusable_corpus_is_a_corpus_error(tmp_path, source):
    if isinstance(source, str):
        source = tmp_path / source
    with pytest.raises(CorpusError):
        load_corpus(source)


def test_normalize_ascii_transliterates_and_none_keeps_unicode():
    raw = "café – naïve".encode("utf-8")
    assert load_corpus(raw, "ascii") == "cafe - naive"
    assert load_corpus(raw, "none") == "café – naïve"


def test_vocab_is_sorted_set_and_round_trips():
    vocab = Vocab.from_text("banana é")
    assert vocab.itos == [" ", "a", "b", "n", "é"]
    assert vocab.stoi == {ch: i for i, ch in enumerate(vocab.itos)}
    assert vocab.vocab_size == 5
    ids = vocab.encode("nab é")
    assert ids.tolist() == [3, 1, 2, 0, 4]
    assert vocab.decode(ids) == "nab é"
    assert Vocab.from_json(vocab.to_json()) == vocab
    assert Vocab.from_json("".join(vocab.itos)) == vocab


def test_encode_unknown_character_names_it():
    with pytest.raises(CorpusError, match=r"'z' \(position 2\)"):
        Vocab.from_text("abc").encode("abzc")


def test_split_keeps_last_fraction_for_validation():
    assert split_text("0123456789", 0.1) == ("012345678", "9")
    assert split_text("0123456789", 0.3) == ("0123456", "789")


def test_batches_are_contiguous_streams_that_restart_together():
    ids = torch.arange(41)  # 40 targets: 4 streams of 10, T=3 -> 3 steps per epoch
    stream = BatchStream(ids, batch_size=4, seq_len=3)
    x0, y0, restarted0 = stream.next()
    x1, _, restarted1 = stream.next()
    assert restarted0 and not restarted1
    assert x0[1].tolist() == [10, 11, 12] and y0[1].tolist() == [11, 12, 13]
    assert x1[1].tolist() == [13, 14, 15]  # stream 1 continues where it stopped
    stream.next()
    x3, _, restarted3 = stream.next()
    assert restarted3 and torch.equal(x3, x0)


def test_too_small_corpus_is_a_clear_error():
    with pytest.raises(CorpusError, match="corpus too small"):
        BatchStream(torch.arange(20), batch_size=4, seq_len=8)
