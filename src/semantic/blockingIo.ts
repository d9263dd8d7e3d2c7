/**
 * Blocking I/O: which calls wait on the disk, the network, a child process or the console on
 * the calling thread. The catalogue every rule and the call graph ask ("does this block the
 * event loop?", "does this helper block?"), so a helper "blocks" exactly when its body would be
 * flagged inside `async def`.
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { CallInfo, FileModel } from './model.js';
import { assignmentsTo, callAt, valueTypeOf } from './model.js';

/** Sleeps that block the calling thread. */
export const SYNC_SLEEP = new Set(['time.sleep']);


/**
 * File-system metadata calls: one inode lookup, served from the kernel's cache almost always.
 * One of them on the event loop is worth knowing (low), not an outage (high); in a loop they add up.
 */
const METADATA = /^(os\.path\.(exists|lexists|isfile|isdir|islink|ismount|getsize|getmtime|getatime|getctime|samefile)|os\.(stat|lstat|access)|Path\.(exists|is_file|is_dir|is_symlink|is_mount|stat|lstat|samefile|resolve|owner|group|readlink))$/;

/** `mkdir(..., exist_ok=True)` / `os.makedirs(..., exist_ok=True)`: a metadata check when the directory exists. */
export function isCheapMetadata(what: string, call?: CallInfo): boolean {
  if (METADATA.test(what)) return true;
  if (call && (what === 'os.makedirs' || what === 'Path.mkdir')) return /\bexist_ok\s*=\s*True\b/.test(call.node.text);
  return false;
}

const BLOCKING_FUNCTIONS = new Set([
  // files
  'builtins.open', 'io.open', 'os.fdopen', 'codecs.open',
  'os.listdir', 'os.scandir', 'os.walk', 'os.stat', 'os.lstat', 'os.remove', 'os.unlink', 'os.rename',
  'os.renames', 'os.replace', 'os.makedirs', 'os.mkdir', 'os.rmdir', 'os.removedirs', 'os.chmod',
  'os.chown', 'os.truncate', 'os.read', 'os.write', 'os.fsync', 'os.access', 'os.utime',
  'os.path.exists', 'os.path.lexists', 'os.path.isfile', 'os.path.isdir', 'os.path.islink',
  'os.path.ismount', 'os.path.getsize', 'os.path.getmtime', 'os.path.getatime', 'os.path.getctime',
  'os.path.samefile',
  'glob.glob', 'glob.iglob',
  // processes
  'os.system', 'os.popen', 'os.wait', 'os.wait3', 'os.wait4', 'os.waitpid', 'os.waitid',
  'subprocess.run', 'subprocess.call', 'subprocess.check_call', 'subprocess.check_output',
  'subprocess.Popen', 'subprocess.getoutput', 'subprocess.getstatusoutput',
  // network
  'urllib.request.urlopen', 'urllib.urlopen', 'urllib3.request',
  'socket.create_connection', 'socket.getaddrinfo', 'socket.gethostbyname', 'socket.gethostbyaddr',
  'socket.getfqdn',
  // console
  'builtins.input',
]);

const BLOCKING_PREFIXES = ['shutil.', 'os.spawn', 'os.exec', 'os.posix_spawn', 'requests.', 'ftplib.', 'smtplib.SMTP', 'telnetlib.'];
/** `shutil` helpers that touch no file. */
const NOT_BLOCKING = new Set(['shutil.get_terminal_size', 'shutil.Error']);
/** Annotations of sync file objects (ASYNC232): their I/O methods block. */
const FILE_TYPES = new Set(['io.TextIOWrapper', 'io.BufferedReader', 'io.BufferedWriter', 'io.BufferedRandom', 'io.FileIO', 'typing.IO', 'typing.TextIO', 'typing.BinaryIO', 'io.IOBase', 'io.RawIOBase', 'io.TextIOBase']);
const FILE_METHODS = new Set(['read', 'readline', 'readlines', 'write', 'writelines', 'flush', 'seek', 'truncate', 'readinto']);
const HTTPX_SYNC = new Set(['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'request', 'stream']);
const HTTP_METHODS = new Set(['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'request', 'send', 'stream']);
const PATH_IO_METHODS = new Set([
  'read_text', 'read_bytes', 'write_text', 'write_bytes', 'open', 'touch', 'unlink', 'mkdir', 'rmdir',
  'exists', 'is_file', 'is_dir', 'is_symlink', 'is_mount', 'stat', 'lstat', 'iterdir', 'glob', 'rglob',
  'rename', 'replace', 'chmod', 'owner', 'group', 'samefile', 'symlink_to', 'hardlink_to', 'readlink',
  'walk', 'resolve', 'expanduser', 'absolute',
].filter((m) => !['expanduser', 'absolute'].includes(m)));
const PATH_TYPES = new Set(['pathlib.Path', 'pathlib.PosixPath', 'pathlib.WindowsPath']);
const SOCKET_METHODS = new Set(['recv', 'recv_into', 'recvfrom', 'send', 'sendall', 'sendto', 'connect', 'accept', 'makefile']);

/** Methods worth typing the receiver for; everything else is decided by name alone. */
const RECEIVER_METHODS = new Set([...PATH_IO_METHODS, ...HTTP_METHODS, ...SOCKET_METHODS, ...FILE_METHODS, 'wait', 'communicate', 'urlopen']);

/**
 * Names the blocking call when `call` is blocking I/O, else null. Exported for the repo phase,
 * which uses it to mark sync helpers that block.
 */
export function blockingIoCall(model: FileModel, call: CallInfo): string | null {
  if (call.offloaded) return null;
  const what = blockingIoName(model, call);
  // `awaited` is looked up lazily (a parent round trip): ask only for candidates.
  return what && !call.awaited ? what : null;
}

function blockingIoName(model: FileModel, call: CallInfo): string | null {
  const q = call.qualifiedName;
  if (q) {
    if (BLOCKING_FUNCTIONS.has(q)) return q.replace(/^builtins\./, '');
    if (q.startsWith('httpx.')) {
      const rest = q.slice('httpx.'.length);
      if (HTTPX_SYNC.has(rest)) return q;
      return null;
    }
    if (q.startsWith('requests.')) {
      // The module-level HTTP functions; classes and exceptions (`requests.HTTPError(...)`) are not I/O.
      const rest = q.slice('requests.'.length).replace(/^api\./, '');
      return HTTPX_SYNC.has(rest) && rest !== 'stream' ? q : null;
    }
    if (NOT_BLOCKING.has(q)) return null;
    for (const p of BLOCKING_PREFIXES) if (q.startsWith(p) && !q.startsWith('requests.')) return q;
  }
  if (!RECEIVER_METHODS.has(call.method) || !importsReceiverLibrary(model) || !call.receiver) return null;
  const receiverType = typeOfExpression(model, call.receiver, call.functionIndex, call.line);
  if (!receiverType) return null;
  if (PATH_TYPES.has(receiverType) && PATH_IO_METHODS.has(call.method)) return `Path.${call.method}`;
  if ((receiverType === 'requests.Session' || receiverType === 'requests.session') && HTTP_METHODS.has(call.method)) {
    return `requests.Session.${call.method}`;
  }
  if (receiverType === 'httpx.Client' && HTTP_METHODS.has(call.method)) return `httpx.Client.${call.method}`;
  if (receiverType === 'urllib3.PoolManager' && (call.method === 'request' || call.method === 'urlopen')) {
    return `urllib3.PoolManager.${call.method}`;
  }
  if ((receiverType === 'socket.socket' || receiverType === 'socket.create_connection') && SOCKET_METHODS.has(call.method)) {
    return `socket.${call.method}`;
  }
  if (FILE_TYPES.has(receiverType) && FILE_METHODS.has(call.method)) return `file.${call.method}`;
  if (receiverType.startsWith('subprocess.Popen') && (call.method === 'wait' || call.method === 'communicate')) {
    return `Popen.${call.method}`;
  }
  return null;
}

/**
 * The qualified type of an expression as far as syntax tells: a constructor call, a name with an
 * annotation or an assignment from a call, a path joined with `/`, `.parent` of a path.
 */
export function typeOfExpression(model: FileModel, node: SyntaxNode, fnIndex: number, line: number, depth = 0): string | null {
  switch (node.type) {
    case 'parenthesized_expression':
      return node.namedChild(0) ? typeOfExpression(model, node.namedChild(0)!, fnIndex, line, depth + 1) : null;
    case 'call': {
      const callee = callAt(model, node);
      const q = callee?.qualifiedName;
      if (!q) return null;
      if (PATH_TYPES.has(q)) return 'pathlib.Path';
      if (q === 'pathlib.Path.cwd' || q === 'pathlib.Path.home') return 'pathlib.Path';
      return q;
    }
    case 'identifier': {
      let t = valueTypeOf(model, node.text, fnIndex, line);
      if (!t && depth < 4) {
        // `p = base / "name"`: the type of the assigned expression.
        const a = lastLocalAssignment(model, node.text, fnIndex, line);
        if (a?.value && a.value.type !== 'identifier') t = typeOfExpression(model, a.value, fnIndex, a.line - 1, depth + 1);
      }
      return t && PATH_TYPES.has(t) ? 'pathlib.Path' : t;
    }
    case 'binary_operator': {
      const left = node.childForFieldName('left');
      const op = node.childForFieldName('operator')?.text;
      if (op === '/' && left) {
        const t = typeOfExpression(model, left, fnIndex, line, depth + 1);
        return t === 'pathlib.Path' ? t : null;
      }
      return null;
    }
    case 'attribute': {
      const attr = node.childForFieldName('attribute')?.text;
      const obj = node.childForFieldName('object');
      if (obj && (attr === 'parent' || attr === 'parents')) {
        return typeOfExpression(model, obj, fnIndex, line, depth + 1) === 'pathlib.Path' ? 'pathlib.Path' : null;
      }
      if (obj?.type === 'identifier' && obj.text === 'self' && attr) {
        return valueTypeOf(model, `self.${attr}`, -1) ?? selfAttributeType(model, attr);
      }
      return null;
    }
    case 'subscript': {
      const value = node.childForFieldName('value');
      if (value?.type === 'attribute' && value.childForFieldName('attribute')?.text === 'parents') {
        return typeOfExpression(model, value, fnIndex, line);
      }
      return null;
    }
    default:
      return null;
  }
}

const RECEIVER_LIBRARIES = /^(pathlib|requests|httpx|urllib3|socket|subprocess|io|typing)(\.|$)/;
const receiverLibraryMemo = new WeakMap<FileModel, boolean>();

/** Typed receivers come from these libraries; a file importing none of them has none. */
function importsReceiverLibrary(model: FileModel): boolean {
  let v = receiverLibraryMemo.get(model);
  if (v === undefined) {
    v = false;
    for (const q of model.imports.values()) if (RECEIVER_LIBRARIES.test(q)) v = true;
    receiverLibraryMemo.set(model, v);
  }
  return v;
}

function lastLocalAssignment(model: FileModel, name: string, fnIndex: number, line: number) {
  let best = null;
  for (const a of assignmentsTo(model, name)) {
    if (a.functionIndex === fnIndex && a.line <= line && (!best || a.line >= best.line)) best = a;
  }
  return best;
}

/** `self.client = httpx.Client()` anywhere in the file gives `self.client` that type. */
function selfAttributeType(model: FileModel, attr: string): string | null {
  for (const a of assignmentsTo(model, `self.${attr}`)) {
    if (a.annotation) return a.annotation;
    let v = a.value;
    if (v?.type === 'call') {
      const t = typeOfExpression(model, v, a.functionIndex, a.line);
      if (t) return t;
    }
    v = null;
  }
  return null;
}
