// Gemma's sentencepiece tokenizer: text -> token ids (BOS prepended) and back, plus the one-token
// answer check. No torch here, and no sentencepiece in this header (pimpl): the protobuf that
// sentencepiece needs stays inside src/text/ (docs/building.md, "The sentencepiece ↔ libtorch crash").
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace sfc::text {

class Tokenizer {
 public:
  // Loads a sentencepiece `tokenizer.model`. Missing or unreadable file -> LoadError(file, problem).
  explicit Tokenizer(const std::filesystem::path& model_file);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // (T) token ids; Gemma prepends BOS (id 2) to every prompt.
  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const;
  // The id of `answer`, which must be exactly one token without BOS (e.g. " goes"); otherwise an
  // Error naming the text and how many tokens it became.
  int64_t encode_one_token(const std::string& answer) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const;  // V of the tokenizer (the model's V may be larger, never smaller)
  int64_t bos_id() const;
  int64_t pad_id() const;
  const std::filesystem::path& file() const { return file_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path file_;
};

// Options of train_sentencepiece beyond the required ones.
struct TrainOptions {
  std::string model_type = "unigram";  // or "bpe", or "word" (one piece per whitespace-separated word)
  bool hard_vocab_limit = false;       // false: a tiny corpus may give fewer pieces than asked
  double character_coverage = 1.0;
};

// Trains a sentencepiece model on a UTF-8 text corpus (one sentence per line) with Gemma's special
// ids (pad 0, eos 1, bos 2, unk 3), single-threaded and unshuffled so the result is deterministic.
// Writes <model_prefix>.model only, and byte-for-byte the same for the same corpus text wherever the
// corpus lies (the corpus path is not stored in it). Failure -> Error naming the corpus.
void train_sentencepiece(const std::filesystem::path& corpus, const std::filesystem::path& model_prefix,
                         int vocab_size, const TrainOptions& options = {});

}  // namespace sfc::text
