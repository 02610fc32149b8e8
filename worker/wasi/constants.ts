/**
 * wasi_snapshot_preview1 constants, named and numbered as in the witx definitions
 * (WebAssembly/WASI, legacy/preview1/witx/typenames.witx).
 */

export const ERRNO_SUCCESS = 0;
export const ERRNO_2BIG = 1;
export const ERRNO_ACCES = 2;
export const ERRNO_AGAIN = 6;
export const ERRNO_BADF = 8;
export const ERRNO_EXIST = 20;
export const ERRNO_FAULT = 21;
export const ERRNO_FBIG = 22;
export const ERRNO_INVAL = 28;
export const ERRNO_IO = 29;
export const ERRNO_ISDIR = 31;
export const ERRNO_LOOP = 32;
export const ERRNO_MFILE = 33;
export const ERRNO_NAMETOOLONG = 37;
export const ERRNO_NOENT = 44;
export const ERRNO_NOSPC = 51;
export const ERRNO_NOSYS = 52;
export const ERRNO_NOTDIR = 54;
export const ERRNO_NOTEMPTY = 55;
export const ERRNO_NOTSOCK = 57;
export const ERRNO_NOTSUP = 58;
export const ERRNO_OVERFLOW = 61;
export const ERRNO_PERM = 63;
export const ERRNO_SPIPE = 70;
export const ERRNO_XDEV = 75;
export const ERRNO_NOTCAPABLE = 76;

export const FILETYPE_UNKNOWN = 0;
export const FILETYPE_CHARACTER_DEVICE = 2;
export const FILETYPE_DIRECTORY = 3;
export const FILETYPE_REGULAR_FILE = 4;
export const FILETYPE_SYMBOLIC_LINK = 7;

export const FDFLAGS_APPEND = 1 << 0;
export const FDFLAGS_DSYNC = 1 << 1;
export const FDFLAGS_NONBLOCK = 1 << 2;
export const FDFLAGS_RSYNC = 1 << 3;
export const FDFLAGS_SYNC = 1 << 4;

export const OFLAGS_CREAT = 1 << 0;
export const OFLAGS_DIRECTORY = 1 << 1;
export const OFLAGS_EXCL = 1 << 2;
export const OFLAGS_TRUNC = 1 << 3;

export const LOOKUPFLAGS_SYMLINK_FOLLOW = 1 << 0;

export const WHENCE_SET = 0;
export const WHENCE_CUR = 1;
export const WHENCE_END = 2;

export const CLOCKID_REALTIME = 0;
export const CLOCKID_MONOTONIC = 1;
export const CLOCKID_PROCESS_CPUTIME_ID = 2;
export const CLOCKID_THREAD_CPUTIME_ID = 3;

export const EVENTTYPE_CLOCK = 0;
export const EVENTTYPE_FD_READ = 1;
export const EVENTTYPE_FD_WRITE = 2;

export const SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME = 1 << 0;

export const FSTFLAGS_ATIM = 1 << 0;
export const FSTFLAGS_ATIM_NOW = 1 << 1;
export const FSTFLAGS_MTIM = 1 << 2;
export const FSTFLAGS_MTIM_NOW = 1 << 3;

export const PREOPENTYPE_DIR = 0;

export const RIGHTS_FD_DATASYNC = 1n << 0n;
export const RIGHTS_FD_READ = 1n << 1n;
export const RIGHTS_FD_SEEK = 1n << 2n;
export const RIGHTS_FD_FDSTAT_SET_FLAGS = 1n << 3n;
export const RIGHTS_FD_SYNC = 1n << 4n;
export const RIGHTS_FD_TELL = 1n << 5n;
export const RIGHTS_FD_WRITE = 1n << 6n;
export const RIGHTS_FD_ADVISE = 1n << 7n;
export const RIGHTS_FD_ALLOCATE = 1n << 8n;
export const RIGHTS_FD_READDIR = 1n << 14n;
export const RIGHTS_FD_FILESTAT_GET = 1n << 21n;
export const RIGHTS_FD_FILESTAT_SET_SIZE = 1n << 22n;
export const RIGHTS_FD_FILESTAT_SET_TIMES = 1n << 23n;
export const RIGHTS_POLL_FD_READWRITE = 1n << 27n;
/** Every right preview1 defines (bits 0 to 29). */
export const RIGHTS_ALL = (1n << 30n) - 1n;

/** Rights of a regular file opened for everything. */
export const RIGHTS_REGULAR_FILE =
  RIGHTS_FD_DATASYNC | RIGHTS_FD_READ | RIGHTS_FD_SEEK | RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_SYNC | RIGHTS_FD_TELL |
  RIGHTS_FD_WRITE | RIGHTS_FD_ADVISE | RIGHTS_FD_ALLOCATE | RIGHTS_FD_FILESTAT_GET | RIGHTS_FD_FILESTAT_SET_SIZE |
  RIGHTS_FD_FILESTAT_SET_TIMES | RIGHTS_POLL_FD_READWRITE;
/** Rights of a directory fd: everything but reading, writing and seeking bytes. */
export const RIGHTS_DIRECTORY = RIGHTS_ALL & ~(RIGHTS_FD_READ | RIGHTS_FD_WRITE | RIGHTS_FD_SEEK | RIGHTS_FD_TELL | RIGHTS_FD_ALLOCATE | RIGHTS_FD_FILESTAT_SET_SIZE);
/** Rights of stdio: read or write, no seeking. */
export const RIGHTS_STDIO = RIGHTS_FD_READ | RIGHTS_FD_WRITE | RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_FILESTAT_GET | RIGHTS_POLL_FD_READWRITE;

/** Every function wasi_snapshot_preview1 defines (witx), so no module fails to link on a preview1 name. */
export const PREVIEW1_FUNCTIONS = [
  'args_get', 'args_sizes_get', 'environ_get', 'environ_sizes_get', 'clock_res_get', 'clock_time_get',
  'fd_advise', 'fd_allocate', 'fd_close', 'fd_datasync', 'fd_fdstat_get', 'fd_fdstat_set_flags', 'fd_fdstat_set_rights',
  'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'fd_pread', 'fd_prestat_get', 'fd_prestat_dir_name',
  'fd_pwrite', 'fd_read', 'fd_readdir', 'fd_renumber', 'fd_seek', 'fd_sync', 'fd_tell', 'fd_write',
  'path_create_directory', 'path_filestat_get', 'path_filestat_set_times', 'path_link', 'path_open', 'path_readlink',
  'path_remove_directory', 'path_rename', 'path_symlink', 'path_unlink_file', 'poll_oneoff', 'proc_exit', 'proc_raise',
  'sched_yield', 'random_get', 'sock_accept', 'sock_recv', 'sock_send', 'sock_shutdown',
] as const;
