// Synthetic subject–verb agreement data for the built-in model (issue 5): a training corpus of
// full sentences and held-out prompt pairs in the SFC JSON-lines format, modelled on the SFC
// paper's datasets (simple, rc, within_rc, nounpp). Deterministic from a seed on every platform
// (own PRNG, no std:: distributions). Not a general template engine.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace sfc::builtin {

// splitmix64 (Steele et al. 2014): tiny, fast, and the same numbers with every standard library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), n > 0 (rejection sampling, no modulo bias)
  double uniform();            // [0, 1)

 private:
  uint64_t state_;
};

enum class AgreementCase { kSimple, kRc, kWithinRc, kNounPp };
inline constexpr AgreementCase kAgreementCases[] = {AgreementCase::kSimple, AgreementCase::kRc,
                                                    AgreementCase::kWithinRc, AgreementCase::kNounPp};
const char* case_name(AgreementCase c);  // "simple", "rc", "within_rc", "nounpp"

// A word in both numbers: a noun ("author", "authors") or a verb ("is", "are").
struct NumberedWord {
  std::string singular, plural;
  const std::string& form(bool plural_form) const { return plural_form ? plural : singular; }
};

// The word lists the templates draw from.
struct WordLists {
  std::vector<NumberedWord> nouns;        // subjects and distractors
  std::vector<NumberedWord> main_verbs;   // is/are, was/were, has/have: the answer of simple, rc, nounpp
  std::vector<std::string> continuations; // [main verb] one word that ends the sentence before "."
  std::vector<NumberedWord> rc_verbs;     // likes/like, …: inside the relative clause (within_rc's answer)
  std::vector<std::string> prepositions;  // nounpp: "near", "behind", …
};
const WordLists& word_lists();

// Every distinct word of the corpus and the pairs ("The", "the", "that", ".", nouns, verbs, …), sorted.
std::vector<std::string> vocabulary_words();

// One clean/patch pair. Prefixes are space-separated words with no trailing space; answers carry a
// leading space (" is") because they continue the prefix (sfc's tokenizer keeps text verbatim).
struct AgreementPair {
  AgreementCase kase = AgreementCase::kSimple;
  std::string clean_prefix, patch_prefix;
  std::string clean_answer, patch_answer;
  int64_t subject_word = 0;   // index (in words) of the noun whose number the patch flips
  bool clean_plural = false;  // number of that noun in the clean prefix
};

struct AgreementDataOptions {
  uint64_t seed = 0;
  int64_t n_corpus = 20000;        // training sentences
  int64_t n_train_pairs = 200;     // per case (fewer when the case has fewer distinct pairs)
  int64_t n_test_pairs = 200;      // per case
  int64_t test_one_in = 5;         // about 1/test_one_in of the noun combinations are held out
};

// Held out = the combination of the two nouns (subject, distractor) for rc, within_rc and nounpp,
// and of noun and main verb for simple. Every word appears in the corpus (a word-level model
// cannot learn an unseen word's number), but no test combination does: test pairs measure
// agreement, not memorised sentences.
struct AgreementData {
  std::vector<std::string> corpus;         // full sentences: prefix + agreeing verb + continuation + "."
  std::vector<AgreementPair> train, test;  // pairs from training / held-out combinations
};

AgreementData make_agreement_data(const AgreementDataOptions& options);

// {"clean_prefix", "patch_prefix", "clean_answer", "patch_answer", "case"} on one line.
std::string to_json_line(const AgreementPair& pair);
void write_pairs_jsonl(const std::filesystem::path& file, const std::vector<AgreementPair>& pairs);
void write_lines(const std::filesystem::path& file, const std::vector<std::string>& lines);

}  // namespace sfc::builtin
