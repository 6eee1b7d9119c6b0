/* km snapshots, asked for by the payload itself.
 *
 *   #include <km/snapshot.h>          (cc -I<km>/include ...)
 *   int r = km_snapshot_take("warm", "after loading the model", 1);
 *
 * km writes the payload's whole state (every thread, memory, descriptors) as a snapshot file (`km --snapshot=FILE`,
 * default ./kmsnap); `km FILE` resumes it later. The call returns KM_SNAPSHOT_TAKEN in the payload that took it
 * (only with live != 0: without it the payload ends once the file is written), KM_SNAPSHOT_RESUMED in every
 * copy resumed from the file, and -1 with errno set when no snapshot was taken: ENOSYS outside km, EBUSY while
 * another snapshot is being written, EINVAL for something km cannot restore (named in km's trace), EIO when the
 * file could not be written.
 */
#ifndef KM_SNAPSHOT_H
#define KM_SNAPSHOT_H

#include <unistd.h>

#define KM_SYSCALL_SNAPSHOT 0x4b4d00L   /* km's own call ("KM" << 8): far above Linux's syscall numbers */

#define KM_SNAPSHOT_TAKEN 0
#define KM_SNAPSHOT_RESUMED 1

static inline int km_snapshot_take(const char *label, const char *description, int live)
{
    return (int)syscall(KM_SYSCALL_SNAPSHOT, label, description, live);
}

#endif
