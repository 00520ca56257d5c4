// Golden streams (tests/golden/v1, written by the NumPy reference): every case must encode to
// exactly its .slc bytes and decode. Passes with nothing to check only if the folder is absent.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.hpp"
#include "npy_json.hpp"
#include "slicer/slicer.h"

namespace {

namespace fs = std::filesystem;

slicer_params ParamsFromJson(const std::string& text) {
  slicer_params p;
  slicer_params_init(&p);
  p.sparsity_ppb = static_cast<uint32_t>(std::stoull(slicer_test::JsonValue(text, "sparsity_ppb")));
  p.asym_ppb = static_cast<uint32_t>(std::stoull(slicer_test::JsonValue(text, "asym_ppb")));
  p.delta_micro = static_cast<uint32_t>(std::stoull(slicer_test::JsonValue(text, "delta_micro")));
  p.seed = std::stoull(slicer_test::JsonValue(text, "seed"));
  p.bits = static_cast<uint8_t>(std::stoul(slicer_test::JsonValue(text, "bits")));
  p.blocks_pos = static_cast<uint8_t>(std::stoul(slicer_test::JsonValue(text, "blocks_pos")));
  p.blocks_neg = static_cast<uint8_t>(std::stoul(slicer_test::JsonValue(text, "blocks_neg")));
  p.chunk_log2 = static_cast<uint8_t>(std::stoul(slicer_test::JsonValue(text, "chunk_log2")));
  p.group_rows = static_cast<uint8_t>(std::stoul(slicer_test::JsonValue(text, "group_rows")));
  const std::vector<uint64_t> levels =
      slicer_test::ParseIntList(slicer_test::JsonValue(text, "levels"));
  if (levels.size() > SLICER_MAX_BLOCKS) throw std::runtime_error("too many levels");
  p.level_count = static_cast<uint8_t>(levels.size());
  for (size_t m = 0; m < levels.size(); ++m) p.levels[m] = static_cast<uint8_t>(levels[m]);
  return p;
}

int DtypeFromName(const std::string& name) {
  if (name == "float32") return SLICER_FLOAT32;
  if (name == "float16") return SLICER_FLOAT16;
  if (name == "bfloat16") return SLICER_BFLOAT16;
  throw std::runtime_error("unknown dtype " + name);
}

void CheckCase(const fs::path& json_path) {
  const std::string name = json_path.stem().string();
  const fs::path dir = json_path.parent_path();
  const std::vector<uint8_t> json_bytes = slicer_test::ReadFile(json_path.string());
  const std::string json(json_bytes.begin(), json_bytes.end());
  const slicer_params params = ParamsFromJson(json);
  const int dtype = DtypeFromName(slicer_test::JsonValue(json, "dtype"));
  const slicer_test::NpyArray input = slicer_test::ReadNpy((dir / (name + ".npy")).string());
  const std::vector<uint8_t> expected = slicer_test::ReadFile((dir / (name + ".slc")).string());

  size_t bound = 0;
  CHECK_EQ(slicer_encode_bound(input.shape.data(), static_cast<uint32_t>(input.shape.size()), dtype,
                               &params, &bound),
           SLICER_OK);
  CHECK(expected.size() <= bound);
  std::vector<uint8_t> stream(std::max<size_t>(bound, 1));
  size_t written = 0;
  for (uint16_t threads : {1, 3}) {
    slicer_params run = params;
    run.threads = threads;
    CHECK_EQ(slicer_encode(input.data.data(), dtype, input.shape.data(),
                           static_cast<uint32_t>(input.shape.size()), &run, stream.data(),
                           stream.size(), &written),
             SLICER_OK);
    const bool same =
        written == expected.size() && std::equal(expected.begin(), expected.end(), stream.begin());
    if (!same) {
      size_t first = 0;
      while (first < std::min(written, expected.size()) && stream[first] == expected[first]) {
        ++first;
      }
      std::fprintf(stderr, "  %s: %zu bytes vs golden %zu, first difference at byte %zu\n",
                   name.c_str(), written, expected.size(), first);
    }
    CHECK(same);
  }
  slicer_header header;
  CHECK_EQ(slicer_read_header(expected.data(), expected.size(), uint64_t{1} << 31, &header),
           SLICER_OK);
  const size_t item = dtype == SLICER_FLOAT32 ? 4 : 2;
  std::vector<uint8_t> decoded(header.num_elements * item);
  CHECK_EQ(slicer_decode(expected.data(), expected.size(), uint64_t{1} << 31, decoded.data(),
                         decoded.size(), 2),
           SLICER_OK);
  CHECK_EQ(header.num_elements * item, input.data.size());
}

TEST(GoldenStreams) {
  // SLICER_GOLDEN_DIR in the environment points the test at other cases of the same layout
  // (e.g. a differential run against freshly generated reference streams).
  const char* override_dir = std::getenv("SLICER_GOLDEN_DIR");
  const fs::path dir = override_dir != nullptr ? override_dir : SLICER_GOLDEN_DIR;
  if (!fs::exists(dir)) {
    std::printf("  %s absent: nothing to check\n", dir.string().c_str());
    return;
  }
  std::vector<fs::path> cases;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  CHECK(!cases.empty());
  for (const fs::path& json : cases) {
    const int before = slicer_test::Failures();
    CheckCase(json);
    std::printf("  %-24s %s\n", json.stem().string().c_str(),
                slicer_test::Failures() == before ? "ok" : "MISMATCH");
  }
}

}  // namespace

TEST_MAIN()
