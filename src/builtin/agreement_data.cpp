// Templates, word lists and the held-out split of the built-in agreement data. Every random choice
// goes through SplitMix64, so a seed gives the same files everywhere.
#include "sfc/builtin/agreement_data.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <stdexcept>

#include "sfc/core/error.h"

namespace sfc::builtin {

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t n) {
  if (n == 0) throw std::invalid_argument("SplitMix64::below(0)");
  const uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);  // largest multiple of n
  uint64_t x = next();
  while (x >= limit) x = next();
  return x % n;
}

double SplitMix64::uniform() { return double(next() >> 11) * 0x1.0p-53; }

const char* case_name(AgreementCase c) {
  switch (c) {
    case AgreementCase::kSimple: return "simple";
    case AgreementCase::kRc: return "rc";
    case AgreementCase::kWithinRc: return "within_rc";
    case AgreementCase::kNounPp: return "nounpp";
  }
  return "?";
}

const WordLists& word_lists() {
  static const WordLists lists = [] {
    WordLists w;
    for (const char* noun : {"author", "guard", "pilot", "doctor", "farmer", "teacher", "senator", "dancer",
                             "officer", "manager", "singer", "student", "painter", "lawyer", "baker",
                             "driver", "writer", "banker", "surgeon", "athlete"})
      w.nouns.push_back({noun, std::string(noun) + "s"});
    w.main_verbs = {{"is", "are"}, {"was", "were"}, {"has", "have"}};
    w.continuations = {"here", "there", "left"};
    w.rc_verbs = {{"likes", "like"}, {"sees", "see"}, {"knows", "know"},
                  {"helps", "help"}, {"hates", "hate"}, {"meets", "meet"}};
    w.prepositions = {"near", "behind", "beside", "with", "without"};
    return w;
  }();
  return lists;
}

std::vector<std::string> vocabulary_words() {
  const auto& w = word_lists();
  std::set<std::string> words = {"The", "the", "that", "."};
  for (const auto* list : {&w.nouns, &w.main_verbs, &w.rc_verbs})
    for (const auto& word : *list) words.insert({word.singular, word.plural});
  words.insert(w.continuations.begin(), w.continuations.end());
  words.insert(w.prepositions.begin(), w.prepositions.end());
  return {words.begin(), words.end()};
}

namespace {

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) out += (out.empty() ? "" : " ") + word;
  return out;
}

// The held-out split: a hash of (seed, salt, a, b), not the running PRNG, so the split does not
// depend on how many sentences were drawn before.
class Split {
 public:
  explicit Split(const AgreementDataOptions& options) : options_(options) {
    const auto& w = word_lists();
    const int64_t n_noun = int64_t(w.nouns.size()), n_verb = int64_t(w.main_verbs.size());
    for (int64_t n = 0; n < n_noun; ++n) {
      // simple: at least one main verb per noun stays in training.
      bool any_train = false;
      for (int64_t v = 0; v < n_verb; ++v) any_train |= !hashed(1, n, v);
      simple_forced_.push_back(!any_train);
    }
  }
  bool test_pair(int64_t n1, int64_t n2) const { return hashed(2, n1, n2); }
  bool test_simple(int64_t n, int64_t v) const { return hashed(1, n, v) && !(v == 0 && simple_forced_[n]); }

 private:
  bool hashed(uint64_t salt, int64_t a, int64_t b) const {
    SplitMix64 h(options_.seed * 0x100000001b3ULL ^ (salt << 48) ^ (uint64_t(a) << 24) ^ uint64_t(b));
    return h.next() % uint64_t(options_.test_one_in) == 0;
  }
  AgreementDataOptions options_;
  std::vector<bool> simple_forced_;
};

// One drawn instance of a template: nouns, numbers and verbs.
struct Draw {
  int64_t n1 = 0, n2 = 0, main_verb = 0, rc_verb = 0, prep = 0;
  bool p1 = false, p2 = false;
};

Draw draw(SplitMix64& rng, const Split& split, AgreementCase c, bool test) {
  const auto& w = word_lists();
  Draw d;
  for (;;) {  // rejection: a combination of the wanted split
    d.n1 = int64_t(rng.below(w.nouns.size()));
    d.n2 = int64_t(rng.below(w.nouns.size()));
    d.main_verb = int64_t(rng.below(w.main_verbs.size()));
    d.rc_verb = int64_t(rng.below(w.rc_verbs.size()));
    d.prep = int64_t(rng.below(w.prepositions.size()));
    d.p1 = rng.below(2) == 1;
    d.p2 = rng.below(2) == 1;
    const bool is_test = c == AgreementCase::kSimple ? split.test_simple(d.n1, d.main_verb) : split.test_pair(d.n1, d.n2);
    if (c != AgreementCase::kSimple && d.n1 == d.n2) continue;
    if (is_test == test) return d;
  }
}

// The prefix words of case `c`, the index of the noun the answer agrees with, and the answer pair.
struct Prefix {
  std::vector<std::string> words;
  int64_t subject = 0;
  const NumberedWord* answer = nullptr;
};

Prefix prefix(AgreementCase c, const Draw& d, bool p1, bool p2) {
  const auto& w = word_lists();
  const auto& N1 = w.nouns[d.n1].form(p1);
  const auto& N2 = w.nouns[d.n2].form(p2);
  switch (c) {
    case AgreementCase::kSimple: return {{"The", N1}, 1, &w.main_verbs[d.main_verb]};
    case AgreementCase::kNounPp:
      return {{"The", N1, w.prepositions[d.prep], "the", N2}, 1, &w.main_verbs[d.main_verb]};
    case AgreementCase::kRc:
      return {{"The", N1, "that", "the", N2, w.rc_verbs[d.rc_verb].form(p2)}, 1, &w.main_verbs[d.main_verb]};
    case AgreementCase::kWithinRc: return {{"The", N1, "that", "the", N2}, 4, &w.rc_verbs[d.rc_verb]};
  }
  throw std::logic_error("prefix: unknown case");
}

AgreementPair make_pair(AgreementCase c, const Draw& d) {
  // within_rc agrees with the relative clause's subject (noun 2), every other case with noun 1.
  const bool flips_n2 = c == AgreementCase::kWithinRc;
  const bool clean_plural = flips_n2 ? d.p2 : d.p1;
  const auto clean = prefix(c, d, d.p1, d.p2);
  const auto patch = prefix(c, d, flips_n2 ? d.p1 : !d.p1, flips_n2 ? !d.p2 : d.p2);
  AgreementPair pair;
  pair.kase = c;
  pair.clean_prefix = join(clean.words);
  pair.patch_prefix = join(patch.words);
  pair.clean_answer = " " + clean.answer->form(clean_plural);
  pair.patch_answer = " " + clean.answer->form(!clean_plural);
  pair.subject_word = clean.subject;
  pair.clean_plural = clean_plural;
  return pair;
}

std::vector<AgreementPair> make_pairs(SplitMix64& rng, const Split& split, int64_t n_per_case, bool test) {
  std::vector<AgreementPair> pairs;
  for (AgreementCase c : kAgreementCases) {
    std::set<std::string> seen;  // no pair twice; a small case (simple) gives fewer than asked
    int64_t n = 0;
    for (int64_t attempt = 0; attempt < 50 * n_per_case && n < n_per_case; ++attempt) {
      auto pair = make_pair(c, draw(rng, split, c, test));
      if (!seen.insert(pair.clean_prefix + "|" + pair.clean_answer).second) continue;
      pairs.push_back(std::move(pair));
      ++n;
    }
  }
  return pairs;
}

}  // namespace

AgreementData make_agreement_data(const AgreementDataOptions& options) {
  if (options.test_one_in < 2) throw Error("agreement data: test_one_in must be >= 2");
  const Split split(options);
  const auto& w = word_lists();
  SplitMix64 rng(options.seed);
  AgreementData data;
  data.corpus.reserve(options.n_corpus);
  for (int64_t i = 0; i < options.n_corpus; ++i) {
    // 20% simple, 40% nounpp, 40% rc (whose prefixes are also within_rc's).
    const uint64_t r = rng.below(10);
    const AgreementCase c = r < 2 ? AgreementCase::kSimple : (r < 6 ? AgreementCase::kNounPp : AgreementCase::kRc);
    const Draw d = draw(rng, split, c, /*test=*/false);
    auto words = prefix(c, d, d.p1, d.p2).words;
    words.push_back(w.main_verbs[d.main_verb].form(d.p1));
    words.push_back(w.continuations[d.main_verb]);
    words.push_back(".");
    data.corpus.push_back(join(words));
  }
  data.train = make_pairs(rng, split, options.n_train_pairs, /*test=*/false);
  data.test = make_pairs(rng, split, options.n_test_pairs, /*test=*/true);
  return data;
}

std::string to_json_line(const AgreementPair& pair) {
  nlohmann::ordered_json j;
  j["clean_prefix"] = pair.clean_prefix;
  j["patch_prefix"] = pair.patch_prefix;
  j["clean_answer"] = pair.clean_answer;
  j["patch_answer"] = pair.patch_answer;
  j["case"] = case_name(pair.kase);
  return j.dump();
}

void write_lines(const std::filesystem::path& file, const std::vector<std::string>& lines) {
  std::ofstream out(file, std::ios::trunc);
  if (!out) throw LoadError(file, "cannot open for writing");
  for (const auto& line : lines) out << line << '\n';
  if (!out.flush()) throw LoadError(file, "write failed (disk full?)");
}

void write_pairs_jsonl(const std::filesystem::path& file, const std::vector<AgreementPair>& pairs) {
  std::vector<std::string> lines;
  lines.reserve(pairs.size());
  for (const auto& pair : pairs) lines.push_back(to_json_line(pair));
  write_lines(file, lines);
}

}  // namespace sfc::builtin
