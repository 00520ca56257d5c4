// Minimal readers for the golden cases: NumPy .npy (little-endian f4/f2/u2, C order) and the
// flat JSON the golden generator writes. Both fail loudly on anything they do not understand.
#ifndef SLICER_TESTS_NPY_JSON_HPP_
#define SLICER_TESTS_NPY_JSON_HPP_

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace slicer_test {

inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
}

struct NpyArray {
  std::string descr;  // "<f4", "<f2" or "<u2"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // raw little-endian items
};

inline NpyArray ReadNpy(const std::string& path) {
  const std::vector<uint8_t> bytes = ReadFile(path);
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || std::string(bytes.begin(), bytes.begin() + 6) != kMagic) {
    throw std::runtime_error(path + ": not an .npy file");
  }
  const unsigned major = bytes[6];
  size_t header_len = 0;
  size_t offset = 0;
  if (major == 1) {
    header_len = bytes[8] | (size_t{bytes[9]} << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw std::runtime_error(path + ": short header");
    header_len =
        bytes[8] | (size_t{bytes[9]} << 8) | (size_t{bytes[10]} << 16) | (size_t{bytes[11]} << 24);
    offset = 12;
  } else {
    throw std::runtime_error(path + ": unknown .npy version");
  }
  if (offset + header_len > bytes.size()) throw std::runtime_error(path + ": short header");
  const std::string header(bytes.begin() + offset, bytes.begin() + offset + header_len);
  NpyArray array;
  const size_t d = header.find("'descr'");
  const size_t q1 = header.find('\'', header.find(':', d) + 1);
  const size_t q2 = header.find('\'', q1 + 1);
  if (d == std::string::npos || q1 == std::string::npos || q2 == std::string::npos) {
    throw std::runtime_error(path + ": no descr");
  }
  array.descr = header.substr(q1 + 1, q2 - q1 - 1);
  if (header.find("'fortran_order': False") == std::string::npos) {
    throw std::runtime_error(path + ": only C-order arrays are supported");
  }
  const size_t s = header.find("'shape'");
  const size_t open = header.find('(', s);
  const size_t close = header.find(')', open);
  if (s == std::string::npos || open == std::string::npos || close == std::string::npos) {
    throw std::runtime_error(path + ": no shape");
  }
  const std::string dims = header.substr(open + 1, close - open - 1);
  size_t i = 0;
  while (i < dims.size()) {
    if (std::isdigit(static_cast<unsigned char>(dims[i]))) {
      size_t j = i;
      while (j < dims.size() && std::isdigit(static_cast<unsigned char>(dims[j]))) ++j;
      array.shape.push_back(std::stoll(dims.substr(i, j - i)));
      i = j;
    } else {
      ++i;
    }
  }
  size_t item;
  if (array.descr == "<f4") {
    item = 4;
  } else if (array.descr == "<f2" || array.descr == "<u2") {
    item = 2;
  } else {
    throw std::runtime_error(path + ": unsupported dtype " + array.descr);
  }
  uint64_t count = 1;
  for (int64_t dim : array.shape) count *= static_cast<uint64_t>(dim);
  const size_t data_start = offset + header_len;
  if (bytes.size() - data_start != count * item) throw std::runtime_error(path + ": bad size");
  array.data.assign(bytes.begin() + data_start, bytes.end());
  return array;
}

// The value after "key": in a JSON text, as a raw token (number, string without quotes, or a
// list body without brackets). Keys in the golden files are unique, so a flat search is exact.
inline std::string JsonValue(const std::string& text, const std::string& key) {
  const size_t k = text.find("\"" + key + "\"");
  if (k == std::string::npos) throw std::runtime_error("json: missing key " + key);
  size_t i = text.find(':', k) + 1;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i >= text.size()) throw std::runtime_error("json: truncated at " + key);
  if (text[i] == '"') {
    const size_t end = text.find('"', i + 1);
    return text.substr(i + 1, end - i - 1);
  }
  if (text[i] == '[') {
    const size_t end = text.find(']', i);
    return text.substr(i + 1, end - i - 1);
  }
  size_t j = i;
  while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '-')) {
    ++j;
  }
  if (j == i) throw std::runtime_error("json: bad value for " + key);
  return text.substr(i, j - i);
}

inline std::vector<uint64_t> ParseIntList(const std::string& body) {
  std::vector<uint64_t> values;
  size_t i = 0;
  while (i < body.size()) {
    if (std::isdigit(static_cast<unsigned char>(body[i]))) {
      size_t j = i;
      while (j < body.size() && std::isdigit(static_cast<unsigned char>(body[j]))) ++j;
      values.push_back(std::stoull(body.substr(i, j - i)));
      i = j;
    } else {
      ++i;
    }
  }
  return values;
}

}  // namespace slicer_test

#endif  // SLICER_TESTS_NPY_JSON_HPP_
