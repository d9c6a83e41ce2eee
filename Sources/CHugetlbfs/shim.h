// libhugetlbfs: huge page size discovery (gethugepagesizes) and hugetlbfs mount
// discovery (hugetlbfs_find_path_for_size), used by VirtioMemory's backing report.
#include <stddef.h>
#include <hugetlbfs.h>
