// Test helpers that look at and drop a file's pages in the page cache.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace redcloud {

// How many of the file's pages are in the page cache (mincore).
inline size_t residentPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t size = std::filesystem::file_size(path);
  void* map = size ? ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  ::close(fd);
  if (map == MAP_FAILED) return 0;
  std::vector<unsigned char> vec((size + 4095) / 4096);
  size_t n = 0;
  if (::mincore(map, size, vec.data()) == 0) {
    for (unsigned char v : vec) n += v & 1;
  }
  ::munmap(map, size);
  return n;
}

// Writes the file's pages out and drops them from the page cache; false
// where the file system keeps them regardless (tmpfs).
inline bool evictFromPageCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return residentPages(path) == 0;
}

}  // namespace redcloud
