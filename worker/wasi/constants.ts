/**
 * wasi_snapshot_preview1 constants, named and numbered as in the witx definitions
 * (WebAssembly/WASI, legacy/preview1/witx/typenames.witx).
 */

/** errno: every value of the witx `errno` enum (u16). */
export const ERRNO_SUCCESS = 0;
export const ERRNO_2BIG = 1;
export const ERRNO_ACCES = 2;
export const ERRNO_ADDRINUSE = 3;
export const ERRNO_ADDRNOTAVAIL = 4;
export const ERRNO_AFNOSUPPORT = 5;
export const ERRNO_AGAIN = 6;
export const ERRNO_ALREADY = 7;
export const ERRNO_BADF = 8;
export const ERRNO_BADMSG = 9;
export const ERRNO_BUSY = 10;
export const ERRNO_CANCELED = 11;
export const ERRNO_CHILD = 12;
export const ERRNO_CONNABORTED = 13;
export const ERRNO_CONNREFUSED = 14;
export const ERRNO_CONNRESET = 15;
export const ERRNO_DEADLK = 16;
export const ERRNO_DESTADDRREQ = 17;
export const ERRNO_DOM = 18;
export const ERRNO_DQUOT = 19;
export const ERRNO_EXIST = 20;
export const ERRNO_FAULT = 21;
export const ERRNO_FBIG = 22;
export const ERRNO_HOSTUNREACH = 23;
export const ERRNO_IDRM = 24;
export const ERRNO_ILSEQ = 25;
export const ERRNO_INPROGRESS = 26;
export const ERRNO_INTR = 27;
export const ERRNO_INVAL = 28;
export const ERRNO_IO = 29;
export const ERRNO_ISCONN = 30;
export const ERRNO_ISDIR = 31;
export const ERRNO_LOOP = 32;
export const ERRNO_MFILE = 33;
export const ERRNO_MLINK = 34;
export const ERRNO_MSGSIZE = 35;
export const ERRNO_MULTIHOP = 36;
export const ERRNO_NAMETOOLONG = 37;
export const ERRNO_NETDOWN = 38;
export const ERRNO_NETRESET = 39;
export const ERRNO_NETUNREACH = 40;
export const ERRNO_NFILE = 41;
export const ERRNO_NOBUFS = 42;
export const ERRNO_NODEV = 43;
export const ERRNO_NOENT = 44;
export const ERRNO_NOEXEC = 45;
export const ERRNO_NOLCK = 46;
export const ERRNO_NOLINK = 47;
export const ERRNO_NOMEM = 48;
export const ERRNO_NOMSG = 49;
export const ERRNO_NOPROTOOPT = 50;
export const ERRNO_NOSPC = 51;
export const ERRNO_NOSYS = 52;
export const ERRNO_NOTCONN = 53;
export const ERRNO_NOTDIR = 54;
export const ERRNO_NOTEMPTY = 55;
export const ERRNO_NOTRECOVERABLE = 56;
export const ERRNO_NOTSOCK = 57;
export const ERRNO_NOTSUP = 58;
export const ERRNO_NOTTY = 59;
export const ERRNO_NXIO = 60;
export const ERRNO_OVERFLOW = 61;
export const ERRNO_OWNERDEAD = 62;
export const ERRNO_PERM = 63;
export const ERRNO_PIPE = 64;
export const ERRNO_PROTO = 65;
export const ERRNO_PROTONOSUPPORT = 66;
export const ERRNO_PROTOTYPE = 67;
export const ERRNO_RANGE = 68;
export const ERRNO_ROFS = 69;
export const ERRNO_SPIPE = 70;
export const ERRNO_SRCH = 71;
export const ERRNO_STALE = 72;
export const ERRNO_TIMEDOUT = 73;
export const ERRNO_TXTBSY = 74;
export const ERRNO_XDEV = 75;
export const ERRNO_NOTCAPABLE = 76;

/** filetype (u8). */
export const FILETYPE_UNKNOWN = 0;
export const FILETYPE_BLOCK_DEVICE = 1;
export const FILETYPE_CHARACTER_DEVICE = 2;
export const FILETYPE_DIRECTORY = 3;
export const FILETYPE_REGULAR_FILE = 4;
export const FILETYPE_SOCKET_DGRAM = 5;
export const FILETYPE_SOCKET_STREAM = 6;
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

export const ADVICE_NORMAL = 0;
export const ADVICE_SEQUENTIAL = 1;
export const ADVICE_RANDOM = 2;
export const ADVICE_WILLNEED = 3;
export const ADVICE_DONTNEED = 4;
export const ADVICE_NOREUSE = 5;

export const EVENTRWFLAGS_FD_READWRITE_HANGUP = 1 << 0;

export const RIFLAGS_RECV_PEEK = 1 << 0;
export const RIFLAGS_RECV_WAITALL = 1 << 1;
export const ROFLAGS_RECV_DATA_TRUNCATED = 1 << 0;

export const SDFLAGS_RD = 1 << 0;
export const SDFLAGS_WR = 1 << 1;

/** Sizes and offsets of the witx records the table reads and writes (wasm32). */
export const SIZEOF_IOVEC = 8;
export const SIZEOF_FILESTAT = 64;
export const SIZEOF_FDSTAT = 24;
export const SIZEOF_DIRENT = 24;
export const SIZEOF_SUBSCRIPTION = 48;
export const SIZEOF_EVENT = 32;

/** rights (u64 flags). */
export const RIGHTS_FD_DATASYNC = 1n << 0n;
export const RIGHTS_FD_READ = 1n << 1n;
export const RIGHTS_FD_SEEK = 1n << 2n;
export const RIGHTS_FD_FDSTAT_SET_FLAGS = 1n << 3n;
export const RIGHTS_FD_SYNC = 1n << 4n;
export const RIGHTS_FD_TELL = 1n << 5n;
export const RIGHTS_FD_WRITE = 1n << 6n;
export const RIGHTS_FD_ADVISE = 1n << 7n;
export const RIGHTS_FD_ALLOCATE = 1n << 8n;
export const RIGHTS_PATH_CREATE_DIRECTORY = 1n << 9n;
export const RIGHTS_PATH_CREATE_FILE = 1n << 10n;
export const RIGHTS_PATH_LINK_SOURCE = 1n << 11n;
export const RIGHTS_PATH_LINK_TARGET = 1n << 12n;
export const RIGHTS_PATH_OPEN = 1n << 13n;
export const RIGHTS_FD_READDIR = 1n << 14n;
export const RIGHTS_PATH_READLINK = 1n << 15n;
export const RIGHTS_PATH_RENAME_SOURCE = 1n << 16n;
export const RIGHTS_PATH_RENAME_TARGET = 1n << 17n;
export const RIGHTS_PATH_FILESTAT_GET = 1n << 18n;
export const RIGHTS_PATH_FILESTAT_SET_SIZE = 1n << 19n;
export const RIGHTS_PATH_FILESTAT_SET_TIMES = 1n << 20n;
export const RIGHTS_FD_FILESTAT_GET = 1n << 21n;
export const RIGHTS_FD_FILESTAT_SET_SIZE = 1n << 22n;
export const RIGHTS_FD_FILESTAT_SET_TIMES = 1n << 23n;
export const RIGHTS_PATH_SYMLINK = 1n << 24n;
export const RIGHTS_PATH_REMOVE_DIRECTORY = 1n << 25n;
export const RIGHTS_PATH_UNLINK_FILE = 1n << 26n;
export const RIGHTS_POLL_FD_READWRITE = 1n << 27n;
export const RIGHTS_SOCK_SHUTDOWN = 1n << 28n;
export const RIGHTS_SOCK_ACCEPT = 1n << 29n;
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
