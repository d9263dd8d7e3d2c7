/**
 * Blocking I/O: which calls wait on the disk, the network, a child process or the console on
 * the calling thread. The catalogue every rule and the call graph ask ("does this block the
 * event loop?", "does this helper block?"), so a helper "blocks" exactly when its body would be
 * flagged inside `async def`.
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { CallInfo, FileModel } from './model.js';
import { assignmentsTo, callAt, valueTypeOf } from './model.js';
import { annotationType, propertyType } from './valueTypes.js';

/** Sleeps that block the calling thread. */
export const SYNC_SLEEP = new Set(['time.sleep']);

/** Below this many seconds, a literal sleep is a yield, not a wait (`time.sleep(0.001)`). */
const SHORT_SLEEP_SECONDS = 0.01;

/**
 * The seconds of a sleep written with a short literal duration (`time.sleep(0)`,
 * `time.sleep(0.001)`), or undefined: the event loop stops for a millisecond, not for a wait.
 * Not in a loop of its function, where the milliseconds add up.
 */
export function shortSleep(call: CallInfo): number | undefined {
  if (call.loops.length) return undefined;
  const args = call.node.childForFieldName('arguments');
  const first = args?.namedChildren.find((a) => a.type !== 'comment');
  if (!first || (first.type !== 'integer' && first.type !== 'float')) return undefined;
  const seconds = Number(first.text.replace(/_/g, ''));
  return Number.isFinite(seconds) && seconds < SHORT_SLEEP_SECONDS ? seconds : undefined;
}


/**
 * File-system metadata calls: one inode looked up or changed (a stat, an unlink, a chmod, a
 * rename), served from the kernel's cache almost always: microseconds on a local disk (an unlink
 * of a large file, or any of them on NFS, can take milliseconds). One of them on the event loop is
 * advisory, a loop of them low: worth knowing, not an outage. Reading, writing, copying or walking
 * files is not one of them.
 */
const METADATA_LOOKUP = /^(os\.path\.(exists|lexists|isfile|isdir|islink|ismount|getsize|getmtime|getatime|getctime|samefile|realpath)|os\.(stat|lstat|statvfs|fstatvfs|access|readlink)|shutil\.disk_usage|Path\.(exists|is_file|is_dir|is_symlink|is_mount|stat|lstat|samefile|resolve|owner|group|readlink))$/;
/** Changes to one inode: cheap on a local disk (see above for the exceptions). */
const METADATA_CHANGE = /^(os\.(unlink|remove|rmdir|mkdir|chmod|chown|lchown|utime|rename|replace|symlink|link)|shutil\.chown|tempfile\.mkdtemp|Path\.(unlink|rmdir|chmod|lchmod|touch|rename|replace|symlink_to|hardlink_to))$/;

/**
 * One local file opened, read or written (`open`, `Path.read_text`, a method of the file it
 * gives), or copied or moved (`shutil.copy`, `shutil.copyfileobj`; `shutil.move` is a rename on
 * the same file system, a copy across): a page-cache hit or a small write for the files services
 * read per request (a template, a config, a lease, an upload), unlike a network call or a tree
 * copied. Per item of a loop it adds up.
 */
export function isSingleFileOp(what: string): boolean {
  return /^(open|io\.open|codecs\.open|Path\.(open|read_text|read_bytes|write_text|write_bytes)|file\.\w+|(tempfile\.)?(NamedTemporaryFile|TemporaryFile|mkstemp|mkdtemp)|shutil\.(copy|copy2|copyfile|copyfileobj|move))$/.test(what);
}

/**
 * One inode looked up or changed (`METADATA_LOOKUP`, `METADATA_CHANGE`), or `mkdir(...,
 * exist_ok=True)` / `os.makedirs(..., exist_ok=True)`: a metadata check when the directory exists.
 */
export function isCheapMetadata(what: string, call?: CallInfo): boolean {
  if (METADATA_LOOKUP.test(what) || METADATA_CHANGE.test(what)) return true;
  // Making a temporary directory is one `mkdir`; as a `with` item its exit removes the whole tree.
  if (what === 'tempfile.TemporaryDirectory') return !call?.isWithItem;
  return isMetadataLookup(what, call);
}

/** A metadata lookup (a stat, an existence check, `mkdir(exist_ok=True)` on an existing directory): no change on disk. */
export function isMetadataLookup(what: string, call?: CallInfo): boolean {
  if (METADATA_LOOKUP.test(what)) return true;
  if (call && (what === 'os.makedirs' || what === 'Path.mkdir')) return /\bexist_ok\s*=\s*True\b/.test(call.node.text);
  return false;
}

/**
 * The catalogue: what blocks, by qualified name (or a prefix, or a pattern), with the async
 * alternative each finding names. The families of flake8-async's ASYNC210–251 and the libraries
 * real services call on the loop (archives, pickles, S3 clients, SMTP, DNS).
 */
type Alternative = 'file' | 'path' | 'process' | 'http' | 'socket' | 'dns' | 'smtp' | 'aws' | 'mongo' | 'search' | 'sdk' | 'input' | 'thread';

export const ALTERNATIVES: Record<Alternative, string> = {
  file: 'use `aiofiles.open` or `anyio.open_file`, or `await asyncio.to_thread(...)`',
  path: 'use `anyio.Path` (`await anyio.Path(p).exists()`) or `await asyncio.to_thread(...)`',
  process: 'use `await asyncio.create_subprocess_exec(...)` (or `..._shell`)',
  http: 'use `httpx.AsyncClient` (or `aiohttp`)',
  socket: 'use `asyncio.open_connection` / the loop\'s socket methods (`loop.sock_recv`, …)',
  dns: 'use `await loop.getaddrinfo(...)`',
  smtp: 'use `aiosmtplib`, or `await asyncio.to_thread(...)`',
  aws: 'use `aioboto3`/`aiobotocore`, or `await asyncio.to_thread(client.method, ...)`',
  mongo: 'use PyMongo\'s `AsyncMongoClient` (or `motor`), or `await asyncio.to_thread(...)`',
  search: 'use the client\'s async class (`AsyncElasticsearch`, `AsyncOpenSearch`), or `await asyncio.to_thread(...)`',
  sdk: 'use the SDK\'s async client or methods where it has them (`AsyncOpenAI`, `AsyncAnthropic`, slack_sdk\'s `AsyncWebClient`, stripe\'s `*_async`), or `await asyncio.to_thread(...)`',
  input: 'use `await asyncio.to_thread(input, ...)`',
  thread: 'run it in a thread: `await asyncio.to_thread(...)`',
};

const BLOCKING_FUNCTIONS = new Map<string, Alternative>([
  // files (ASYNC230/231)
  // `os.fdopen(fd)` is not here: it wraps a descriptor already open (one fstat); the file object it
  // gives is typed below, so its reads and writes are.
  ...['builtins.open', 'io.open', 'io.open_code', 'codecs.open', 'gzip.open', 'bz2.open', 'lzma.open', 'tarfile.open',
    'zipfile.ZipFile', 'fsspec.open', 'shelve.open', 'dbm.open', 'pickle.load',
    // A temporary file is a file on disk, made and opened now (a spooled one stays in memory until it grows).
    'tempfile.NamedTemporaryFile', 'tempfile.TemporaryFile', 'tempfile.mkstemp'].map((q): [string, Alternative] => [q, 'file']),
  ...['tempfile.mkdtemp', 'tempfile.TemporaryDirectory'].map((q): [string, Alternative] => [q, 'thread']),
  ...['os.listdir', 'os.scandir', 'os.walk', 'os.stat', 'os.lstat', 'os.remove', 'os.unlink', 'os.rename', 'os.renames', 'os.replace',
    'os.makedirs', 'os.mkdir', 'os.rmdir', 'os.removedirs', 'os.chmod', 'os.chown', 'os.truncate', 'os.read', 'os.write', 'os.fsync',
    'os.access', 'os.utime', 'os.statvfs', 'glob.glob', 'glob.iglob'].map((q): [string, Alternative] => [q, 'path']),
  // os.path that touches the disk (ASYNC240); normpath and relpath are string work and are not
  // here (a deliberate difference from flake8-async, see `explain PA301`).
  ...['exists', 'lexists', 'isfile', 'isdir', 'islink', 'ismount', 'getsize', 'getmtime', 'getatime', 'getctime', 'samefile',
    'sameopenfile', 'realpath', '_joinrealpath'].map((f): [string, Alternative] => [`os.path.${f}`, 'path']),
  // processes (ASYNC220–222)
  ...['os.system', 'os.popen', 'os.wait', 'os.wait3', 'os.wait4', 'os.waitpid', 'os.waitid', 'os.posix_spawn', 'os.posix_spawnp',
    'subprocess.run', 'subprocess.call', 'subprocess.check_call', 'subprocess.check_output', 'subprocess.Popen',
    'subprocess.getoutput', 'subprocess.getstatusoutput'].map((q): [string, Alternative] => [q, 'process']),
  // network (ASYNC210/211)
  ...['urllib.request.urlopen', 'urllib.urlopen', 'urllib3.request'].map((q): [string, Alternative] => [q, 'http']),
  ['socket.create_connection', 'socket'],
  ...['socket.getaddrinfo', 'socket.gethostbyname', 'socket.gethostbyname_ex', 'socket.gethostbyaddr', 'socket.getfqdn', 'socket.getnameinfo']
    .map((q): [string, Alternative] => [q, 'dns']),
  // console (ASYNC250)
  ['builtins.input', 'input'],
]);

/** Whole families by pattern: `shutil.*` tree operations, `os.spawn*`/`os.exec*`, SMTP, FTP, telnet. */
const BLOCKING_PATTERNS: [RegExp, Alternative][] = [
  [/^shutil\.(?!get_terminal_size$|Error$|which$|ExecError$|ReadError$|RegistryError$|SameFileError$|SpecialFileError$)\w+$/, 'path'],
  [/^os\.spawn[vl]p?e?$/, 'process'],
  [/^os\.exec[vl]p?e?$/, 'process'],
  [/^smtplib\.(SMTP|SMTP_SSL|LMTP)$/, 'smtp'],
  [/^(ftplib|telnetlib|poplib|imaplib|nntplib)\.\w+$/, 'thread'],
  // Stripe's resource classes call the API synchronously (`stripe.PaymentIntent.create(...)`).
  [/^stripe\.[A-Z]\w*\.(?!\w*_async$)(create|retrieve|modify|update|delete|list|search|confirm|capture|cancel|finalize_invoice|pay|void_invoice|list_\w+|create_\w+|retrieve_\w+)$/, 'sdk'],
];

/** Sync HTTP clients: the module functions of `requests`, `httpx` and its `httpx2` fork (ASYNC210). */
const HTTP_MODULES = /^(requests|httpx|httpx2)\.(api\.)?(get|post|put|patch|delete|head|options|request|stream)$/;

/** A database or collection of a sync PyMongo client (`client.app`, `client["app"].orders`). */
const MONGO_TYPE = 'pymongo.collection.Collection';
/** A sub-resource of a sync OpenAI/Anthropic client (`client.chat.completions`). */
const OPENAI_TYPE = 'openai.resources.Resource';
/** A SendGrid client's request builder (`sg.client.whitelabel.domains._(id).validate.post()`): every `get`/`post`/… is a request. */
const SENDGRID_TYPE = 'python_http_client.client.Client';
/** A Twilio client's list or context resource (`client.messages.create(...)`). */
const TWILIO_TYPE = 'twilio.base.list_resource.ListResource';
/** A Docker client's collection (`client.containers`, `.images`): each method is a call to the daemon's HTTP API. */
const DOCKER_TYPE = 'docker.models.resource.Collection';

/**
 * The names of blocking calls that type the receiver, and on what types (ASYNC212, ASYNC232):
 * `null` methods means every method of the type blocks.
 */
const TYPED: { types: ReadonlySet<string>; methods: ReadonlySet<string> | null; label: string; alternative: Alternative }[] = [
  { types: new Set(['pathlib.Path']), methods: new Set([
    'read_text', 'read_bytes', 'write_text', 'write_bytes', 'open', 'touch', 'unlink', 'mkdir', 'rmdir', 'exists', 'is_file', 'is_dir',
    'is_symlink', 'is_mount', 'stat', 'lstat', 'iterdir', 'glob', 'rglob', 'rename', 'replace', 'chmod', 'owner', 'group', 'samefile',
    'symlink_to', 'hardlink_to', 'readlink', 'walk', 'resolve']), label: 'Path', alternative: 'path' },
  { types: new Set(['requests.Session', 'requests.session', 'requests.sessions.Session']), methods: new Set(['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'request', 'send']), label: 'requests.Session', alternative: 'http' },
  { types: new Set(['httpx.Client', 'httpx2.Client']), methods: new Set(['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'request', 'send', 'stream', 'close']), label: 'httpx.Client', alternative: 'http' },
  { types: new Set(['urllib3.PoolManager', 'urllib3.ProxyManager', 'urllib3.HTTPConnectionPool', 'urllib3.HTTPSConnectionPool',
    'urllib3.connectionpool.ConnectionPool', 'urllib3.connectionpool.HTTPConnectionPool', 'urllib3.connectionpool.HTTPSConnectionPool',
    'urllib3.poolmanager.PoolManager', 'urllib3.poolmanager.ProxyManager', 'urllib3.request.RequestMethods', 'urllib3.connection_from_url']), methods: null, label: 'urllib3', alternative: 'http' },
  { types: new Set(['socket.socket', 'socket.create_connection']), methods: new Set(['recv', 'recv_into', 'recvfrom', 'send', 'sendall', 'sendto', 'connect', 'accept', 'makefile']), label: 'socket', alternative: 'socket' },
  { types: new Set(['io.TextIOWrapper', 'io.BufferedReader', 'io.BufferedWriter', 'io.BufferedRandom', 'io.FileIO', 'typing.IO', 'typing.TextIO', 'typing.BinaryIO', 'io.IOBase', 'io.RawIOBase', 'io.TextIOBase']), methods: null, label: 'file', alternative: 'file' },
  { types: new Set(['subprocess.Popen']), methods: new Set(['wait', 'communicate']), label: 'Popen', alternative: 'process' },
  { types: new Set(['smtplib.SMTP', 'smtplib.SMTP_SSL']), methods: new Set(['sendmail', 'send_message', 'login', 'starttls', 'ehlo', 'helo', 'quit', 'connect', 'noop']), label: 'smtplib.SMTP', alternative: 'smtp' },
  { types: new Set(['boto3.client', 'boto3.resource', 'boto3.session.Session.client', 'boto3.session.Session.resource', 'boto3.Session.client', 'boto3.Session.resource']), methods: null, label: 'boto3', alternative: 'aws' },
  // Sync clients of services real handlers call: every method is a round trip (or a chain of
  // sub-resources leading to one: `client.chat.completions.create`, `client.app.orders.find_one`).
  { types: new Set([MONGO_TYPE, 'pymongo.MongoClient', 'pymongo.mongo_client.MongoClient']), methods: null, label: 'pymongo', alternative: 'mongo' },
  { types: new Set(['elasticsearch.Elasticsearch', 'opensearchpy.OpenSearch']), methods: null, label: 'elasticsearch', alternative: 'search' },
  { types: new Set([OPENAI_TYPE, 'openai.OpenAI', 'openai.AzureOpenAI', 'anthropic.Anthropic']), methods: null, label: 'openai', alternative: 'sdk' },
  { types: new Set([SENDGRID_TYPE, 'sendgrid.SendGridAPIClient', 'sendgrid.sendgrid.SendGridAPIClient']), methods: null, label: 'sendgrid', alternative: 'sdk' },
  { types: new Set(['slack_sdk.WebClient', 'slack_sdk.web.WebClient', 'slack_sdk.web.client.WebClient', 'slack.WebClient']), methods: null, label: 'slack_sdk.WebClient', alternative: 'sdk' },
  { types: new Set([TWILIO_TYPE, 'twilio.rest.Client']), methods: null, label: 'twilio', alternative: 'sdk' },
  // Vector stores' sync clients (each has an async one: `AsyncQdrantClient`, `AsyncMilvusClient`, `AsyncHttpClient`).
  { types: new Set(['qdrant_client.QdrantClient', 'qdrant_client.qdrant_client.QdrantClient']), methods: null, label: 'qdrant_client.QdrantClient', alternative: 'sdk' },
  { types: new Set(['pymilvus.MilvusClient', 'pymilvus.milvus_client.MilvusClient']), methods: null, label: 'pymilvus.MilvusClient', alternative: 'sdk' },
  { types: new Set(['chromadb.HttpClient']), methods: null, label: 'chromadb.HttpClient', alternative: 'sdk' },
  // The Docker SDK talks HTTP to the daemon, synchronously (`docker.from_env().containers.run(...)`).
  { types: new Set([DOCKER_TYPE, 'docker.from_env', 'docker.client.from_env', 'docker.DockerClient', 'docker.client.DockerClient', 'docker.APIClient', 'docker.api.client.APIClient']), methods: null, label: 'docker', alternative: 'thread' },
  // The Kubernetes client's API classes: every method is a request to the API server (kubernetes_asyncio is the async one).
  { types: new Set(['kubernetes.client.CoreV1Api', 'kubernetes.client.AppsV1Api', 'kubernetes.client.BatchV1Api', 'kubernetes.client.CustomObjectsApi', 'kubernetes.client.NetworkingV1Api']), methods: null, label: 'kubernetes', alternative: 'thread' },
  // A Solr core over HTTP (`add`, `search`, `delete`, `commit`): pysolr has no async client.
  { types: new Set(['pysolr.Solr', 'pysolr.SolrCoreAdmin']), methods: null, label: 'pysolr.Solr', alternative: 'thread' },
];
const PATH_TYPES = new Set(['pathlib.Path', 'pathlib.PosixPath', 'pathlib.WindowsPath']);
/** Methods of a path that give a path (`Path(__file__).resolve()`, `p.with_suffix(".bak")`). */
const PATH_RETURNING = new Set(['resolve', 'absolute', 'expanduser', 'with_name', 'with_suffix', 'with_stem', 'joinpath', 'relative_to', 'readlink', 'with_segments']);
/** Sync clients whose attributes and items are sub-resources of the same client (see `typeOfExpression`). */
const SUBRESOURCE_TYPES = new Map<string, string>([
  ['pymongo.MongoClient', MONGO_TYPE], ['pymongo.mongo_client.MongoClient', MONGO_TYPE], [MONGO_TYPE, MONGO_TYPE],
  ['openai.OpenAI', OPENAI_TYPE], ['openai.AzureOpenAI', OPENAI_TYPE], ['anthropic.Anthropic', OPENAI_TYPE], [OPENAI_TYPE, OPENAI_TYPE],
  ['sendgrid.SendGridAPIClient', SENDGRID_TYPE], ['sendgrid.sendgrid.SendGridAPIClient', SENDGRID_TYPE], [SENDGRID_TYPE, SENDGRID_TYPE],
  ['twilio.rest.Client', TWILIO_TYPE], [TWILIO_TYPE, TWILIO_TYPE],
  ['docker.from_env', DOCKER_TYPE], ['docker.client.from_env', DOCKER_TYPE], ['docker.DockerClient', DOCKER_TYPE], ['docker.client.DockerClient', DOCKER_TYPE], [DOCKER_TYPE, DOCKER_TYPE],
]);

/** Methods of a typed receiver that do no I/O even on a blocking type. */
const LOCAL_METHODS = new Set(['get_database', 'get_collection', 'get_default_database', 'with_options', 'fileno', 'isatty', 'readable', 'writable', 'seekable', 'get_paginator', 'get_waiter', 'can_paginate', 'generate_presigned_url', 'generate_presigned_post', 'with_name', 'with_suffix', 'joinpath', 'relative_to', 'as_posix', 'as_uri', 'is_absolute', 'match']);

const TYPED_METHODS = new Set<string>();
for (const t of TYPED) for (const m of t.methods ?? []) TYPED_METHODS.add(m);

/** The catalogue's family of a blocking call (its `what`), or null when the catalogue does not name it. */
function familyOf(what: string): Alternative | null {
  const a = BLOCKING_FUNCTIONS.get(what) ?? BLOCKING_FUNCTIONS.get(`builtins.${what}`);
  if (a) return a;
  for (const [re, alt] of BLOCKING_PATTERNS) if (re.test(what)) return alt;
  if (HTTP_MODULES.test(what)) return 'http';
  const dot = what.indexOf('.');
  const label = dot > 0 ? what.slice(0, what.lastIndexOf('.')) : what;
  for (const t of TYPED) if (t.label === label) return t.alternative;
  return null;
}

/**
 * A library function the catalogue says blocks, named by its qualified name (`requests.head`,
 * `subprocess.run`): for a callable handed to another function rather than called here.
 */
export function blockingFunctionName(q: string): string | null {
  if (q === 'subprocess.Popen') return null;
  if (BLOCKING_FUNCTIONS.has(q)) return q.replace(/^builtins\./, '');
  if (HTTP_MODULES.test(q)) return q.replace('.api.', '.');
  for (const [re] of BLOCKING_PATTERNS) if (re.test(q)) return q;
  return null;
}

/** The async alternative to name for a blocking call (its `what`). */
export function alternativeFor(what: string): string {
  return ALTERNATIVES[familyOf(what) ?? 'thread'];
}

/** Does the blocking call (its `what`) run a child process and wait for it (`subprocess.run`, `os.system`, `Popen.wait`)? */
export function runsChildProcess(what: string): boolean {
  return familyOf(what) === 'process';
}

/** Is `t` (a type path: `boto3.client()`, `@requests.Session`) one whose methods the catalogue says block? */
export function isBlockingClientType(t: string): boolean {
  const bare = t.replace(/^@/, '').replace(/\(\)$/, '');
  return TYPED.some((entry) => entry.types.has(bare));
}

/**
 * A blocking method of a receiver of a known type (`pathlib.Path`, `httpx.Client`, a file, a
 * boto3 client…): its label (`Path.read_text`), or null. Shared by the file rules and the repo
 * phase (receivers typed through another module).
 */
export function blockingMethod(receiverType: string, method: string): string | null {
  const t = receiverType.replace(/^@/, '').replace(/\(\)$/, '');
  if (LOCAL_METHODS.has(method) || method.startsWith('_')) return null;
  for (const entry of TYPED) {
    if (!entry.types.has(t)) continue;
    if (entry.methods && !entry.methods.has(method)) return null;
    // A boto3 resource's sub-resources (`dynamodb.Table("users")`, `s3.Bucket("b")`) are local
    // handles, made without a request; their methods are the round trips.
    if (entry.label === 'boto3' && /^[A-Z]/.test(method)) return null;
    return `${entry.label}.${method}`;
  }
  return null;
}

/**
 * A method call on a module-level object imported from another module of the repo
 * (`SOCKET.exists()` with `from app.consts import SOCKET`): the file cannot type it, the repo
 * phase can (`SOCKET = Path(...)` there). The receiver's qualified path and the method, when the
 * method is one a typed receiver blocks on; else null.
 */
export function pendingBlockingMethod(model: FileModel, call: CallInfo): { typePath: string; method: string } | null {
  const q = call.qualifiedName;
  // Any method may block on a client whose every method is a round trip (`s3.put_object(...)`
  // with `from app.clients import s3`); which one it is, only the defining module says.
  if (!q || !call.hasReceiver || call.offloaded || call.awaited || call.method.startsWith('_') || LOCAL_METHODS.has(call.method)) return null;
  const receiver = call.dottedReceiver;
  if (!receiver || receiver.includes('.') || !q.endsWith(`.${call.method}`)) return null;
  const typePath = q.slice(0, -call.method.length - 1);
  // Only names imported from the repo's own modules: a library's objects are typed in the file.
  if (!typePath.includes('.') || RECEIVER_LIBRARIES.test(typePath) || model.imports.get(receiver) !== typePath) return null;
  return { typePath, method: call.method };
}

/**
 * Names the blocking call when `call` is blocking I/O, else null. Exported for the repo phase,
 * which uses it to mark sync helpers that block.
 */
export function blockingIoCall(model: FileModel, call: CallInfo): string | null {
  if (call.offloaded) return null;
  const what = blockingIoName(model, call);
  if (!what) return null;
  // A library function known to be sync blocks even under a (mistaken) `await`; a method is
  // awaited when its receiver is an async client after all. `awaited` is looked up lazily (a
  // parent round trip): ask only for candidates.
  if (call.qualifiedName !== null && (BLOCKING_FUNCTIONS.has(call.qualifiedName) || BLOCKING_PATTERNS.some(([re]) => re.test(call.qualifiedName!)))) return what;
  return call.awaited ? null : what;
}

function blockingIoName(model: FileModel, call: CallInfo): string | null {
  const q = call.qualifiedName;
  if (q) {
    if (BLOCKING_FUNCTIONS.has(q)) return readsMemory(model, call, q) || startsProcessOnly(call, q) ? null : q.replace(/^builtins\./, '');
    if (HTTP_MODULES.test(q)) return q.replace('.api.', '.');
    if (q.startsWith('requests.') || q.startsWith('httpx.') || q.startsWith('httpx2.')) return null;
    for (const [re] of BLOCKING_PATTERNS) if (re.test(q)) return q;
  }
  if (!call.receiver || !importsReceiverLibrary(model)) return null;
  if (!TYPED_METHODS.has(call.method) && !anyMethodHint(model)) return null;
  const receiverType = typeOfExpression(model, call.receiver, call.functionIndex, call.line);
  if (!receiverType) return null;
  const what = blockingMethod(receiverType, call.method);
  if (!what) return null;
  if (what === 'socket.connect' && unixSocket(model, call)) return null;
  // `lambda f: f.read()`: the lambda's own parameter, not the file of the same name outside.
  if (call.receiver.type === 'identifier' && boundByLambda(call.node, call.receiver.text)) return null;
  return what;
}

/**
 * `subprocess.Popen(...)` starts the child and returns: a fork and exec, which
 * `asyncio.create_subprocess_exec` also runs on the loop's thread. Waiting for it is what blocks,
 * and that is `wait()`/`communicate()` on the object (typed below, also chained on the call:
 * `Popen(cmd).communicate()`), or leaving `with Popen(...)` (`Popen.__exit__` waits).
 */
function startsProcessOnly(call: CallInfo, q: string): boolean {
  if (q !== 'subprocess.Popen') return false;
  let node = call.node;
  while (node.parent?.type === 'parenthesized_expression') node = node.parent;
  const p = node.parent;
  if (!p) return true;
  if (p.type === 'with_item' || (p.type === 'as_pattern' && p.parent?.type === 'with_item')) return false;
  return true;
}

/**
 * `connect()` on a socket made with `AF_UNIX` (`socket.socket(socket.AF_UNIX, ...)` on the
 * receiver itself, or every binding of its name in the function): a local socket connects or
 * fails (`ECONNREFUSED`, `ENOENT`) at once, with no network round trip to wait for. Its reads and
 * writes still wait for the peer.
 */
function unixSocket(model: FileModel, call: CallInfo): boolean {
  const r = call.receiver;
  if (!r) return false;
  if (r.type === 'call') return /\bAF_UNIX\b/.test(r.childForFieldName('arguments')?.text ?? '');
  if (r.type !== 'identifier') return false;
  return everyBindingBefore(model, call, r.text, (v) => v.type === 'call' && /\bAF_UNIX\b/.test(v.childForFieldName('arguments')?.text ?? ''));
}

/** Is `name` bound in the call's function before it, and is every such binding's value one `test` accepts? */
function everyBindingBefore(model: FileModel, call: CallInfo, name: string, test: (value: SyntaxNode) => boolean): boolean {
  if (call.functionIndex < 0) return false;
  const bound = model.assignments.filter((a) => a.functionIndex === call.functionIndex && a.target === name && a.line <= call.line);
  return bound.length > 0 && bound.every((a) => !!a.value && test(a.value));
}

/**
 * Readers that take a file object, and the argument (position, keyword) that names it: handed an
 * in-memory buffer, they parse bytes already in the process and touch no disk.
 */
const FILE_OBJECT_READERS = new Map<string, [number, string]>([
  ['zipfile.ZipFile', [0, 'file']], ['tarfile.open', [-1, 'fileobj']], ['pickle.load', [0, 'file']],
  ['gzip.open', [0, 'filename']], ['bz2.open', [0, 'filename']], ['lzma.open', [0, 'filename']],
]);
/** An in-memory buffer: `io.BytesIO(data)`, `BytesIO(data)`, `io.StringIO(text)`. */
const MEMORY_BUFFER = /^(io\.)?(BytesIO|StringIO)\s*\(/;

/**
 * `zipfile.ZipFile(io.BytesIO(data))`, `tarfile.open(fileobj=buf)` where `buf = io.BytesIO(...)`:
 * the reader's file is a buffer in memory (a name bound to one in the function counts).
 */
function readsMemory(model: FileModel, call: CallInfo, q: string): boolean {
  const spec = FILE_OBJECT_READERS.get(q);
  if (!spec) return false;
  const args = call.node.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
  const keyword = args.find((a) => a.type === 'keyword_argument' && a.childForFieldName('name')?.text === spec[1])?.childForFieldName('value');
  const positional = spec[0] >= 0 ? args.filter((a) => a.type !== 'keyword_argument')[spec[0]] : undefined;
  const arg = keyword ?? positional;
  if (!arg) return false;
  let memory = MEMORY_BUFFER.test(arg.text);
  if (!memory && arg.type === 'identifier') memory = everyBindingBefore(model, call, arg.text, (v) => MEMORY_BUFFER.test(v.text));
  return memory && !touchesDisk(model, call, ARCHIVE_DISK_METHODS[q] ?? NO_DISK_METHOD);
}

/**
 * Archive methods that read or write files on disk, per reader: a zip's `extractall(dir)`,
 * `extract(m, dir)`, `write(path)`; a tar's `extractall`, `extract`, `add(path)`. (A gzip, bz2 or
 * lzma file's `write(data)` writes into its buffer.)
 */
const ARCHIVE_DISK_METHODS: Record<string, RegExp> = { 'zipfile.ZipFile': /^(extractall|extract|write)$/, 'tarfile.open': /^(extractall|extract|add)$/ };
const NO_DISK_METHOD = /^$/;

/**
 * Does the code use the archive the call opens for disk work (`with ZipFile(buf) as zf:
 * zf.extractall(dest)`, `zf.write(path)`): the name the `with` or an assignment binds it to,
 * called with such a method in the function.
 */
function touchesDisk(model: FileModel, call: CallInfo, diskMethods: RegExp): boolean {
  let p = call.node.parent;
  while (p && (p.type === 'parenthesized_expression' || p.type === 'await')) p = p.parent;
  let alias: string | null = null;
  if (p?.type === 'as_pattern') alias = p.childForFieldName('alias')?.text ?? p.namedChildren[1]?.text ?? null;
  else if (p?.type === 'assignment' && p.childForFieldName('left')?.type === 'identifier') alias = p.childForFieldName('left')!.text;
  alias = alias?.replace(/^\(|\)$/g, '').trim() ?? null;
  // `ZipFile(buf).extractall(dest)`: the method is called on the call itself.
  const outer = call.node.parent?.type === 'attribute' ? call.node.parent.childForFieldName('attribute')?.text : undefined;
  if (outer && diskMethods.test(outer)) return true;
  if (!alias || !/^\w+$/.test(alias)) return false;
  return model.calls.some((c) => c.functionIndex === call.functionIndex && c.dottedReceiver === alias && diskMethods.test(c.method) && c.line >= call.line);
}

/** Types whose every method blocks appear in the file: type any method's receiver. */
const ANY_METHOD_HINT = /urllib3|TextIOWrapper|Buffered(Reader|Writer|Random)|FileIO|typing\.(IO|TextIO|BinaryIO)|\bIO\b|TextIO|BinaryIO|boto3|pymongo|MongoClient|Elasticsearch|OpenSearch|openai|anthropic|sendgrid|SendGridAPIClient|slack_sdk|WebClient|twilio|QdrantClient|MilvusClient|HttpClient|pysolr|\bSolr\b|docker|DockerClient|kubernetes|\b(fd)?open\(/;
const anyMethodHintMemo = new WeakMap<FileModel, boolean>();

/** {@link ANY_METHOD_HINT} on the file's text, once per file (it was asked once per call). */
function anyMethodHint(model: FileModel): boolean {
  let v = anyMethodHintMemo.get(model);
  if (v === undefined) anyMethodHintMemo.set(model, (v = ANY_METHOD_HINT.test(model.source)));
  return v;
}

/** Is `name` a parameter of a lambda between `node` and its function? */
function boundByLambda(node: SyntaxNode, name: string): boolean {
  for (let p = node.parent; p && p.type !== 'function_definition'; p = p.parent) {
    if (p.type !== 'lambda') continue;
    const params = p.childForFieldName('parameters')?.text ?? '';
    if (new RegExp(`(^|[,\\s*])${name}(\\s*[,=:]|$)`).test(params)) return true;
  }
  return false;
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
      // `MEDIA.joinpath("thumbs")`, `Path(__file__).resolve()`: a path's method that gives a path,
      // whatever name the callee resolves to.
      const fnNode = node.childForFieldName('function');
      if (fnNode?.type === 'attribute' && PATH_RETURNING.has(fnNode.childForFieldName('attribute')?.text ?? '') && depth < 14) {
        const base = fnNode.childForFieldName('object');
        if (base && typeOfExpression(model, base, fnIndex, line, depth + 1) === 'pathlib.Path') return 'pathlib.Path';
      }
      if (!q) {
        // `bundle.latest()` on an instance of a class of this file: the method's return annotation.
        const fn = node.childForFieldName('function');
        const obj = fn?.type === 'attribute' ? fn.childForFieldName('object') : null;
        const name = fn?.childForFieldName('attribute')?.text;
        // SendGrid's path segment builder (`domains._(domain_id)`): the same request builder.
        if (name === '_' && obj && depth < 6 && typeOfExpression(model, obj, fnIndex, line, depth + 1) === SENDGRID_TYPE) return SENDGRID_TYPE;
        const objType = obj && name && depth < 14 ? typeOfExpression(model, obj, fnIndex, line, depth + 1) : null;
        // `Path(__file__).resolve().parent`, `base.expanduser()`: a path's methods that give a path.
        if (objType === 'pathlib.Path' && PATH_RETURNING.has(name!)) return objType;
        return obj && name && depth < 4 ? memberType(model, objType, name, false) : null;
      }
      if (PATH_TYPES.has(q)) return 'pathlib.Path';
      if (q === 'pathlib.Path.cwd' || q === 'pathlib.Path.home') return 'pathlib.Path';
      // `Path(__file__).resolve()` resolved by name: a path's method that gives a path.
      const dot = q.lastIndexOf('.');
      if (dot > 0 && PATH_TYPES.has(q.slice(0, dot)) && PATH_RETURNING.has(q.slice(dot + 1))) return 'pathlib.Path';
      // `open(...)` gives a file object (flake8-async's `typed_calls["open"]`).
      if (q === 'builtins.open' || q === 'io.open' || q === 'codecs.open' || q === 'os.fdopen') return 'io.TextIOWrapper';
      return q;
    }
    case 'identifier': {
      let t = valueTypeOf(model, node.text, fnIndex, line);
      // Names bound to names (`MEDIA = BASE_DIR / "media"`, `BASE_DIR = Path(__file__).resolve().parent`)
      // are followed a few assignments deep: each costs several levels of the expression walk.
      if (!t && depth < 12) {
        // `p = base / "name"`, `f = ff`: the type of the assigned expression.
        const a = lastLocalAssignment(model, node.text, fnIndex, line);
        if (a?.value && !(a.value.type === 'identifier' && a.value.text === node.text)) t = typeOfExpression(model, a.value, a.functionIndex, a.line - 1, depth + 1);
        // `catalog = client["shop"]["products"]` at module level: a sub-resource of a sync client.
        else if (!a && fnIndex >= 0 && !model.functions[fnIndex]!.params.some((p) => p.name === node.text)) {
          const m = lastLocalAssignment(model, node.text, -1, Number.MAX_SAFE_INTEGER);
          if (m?.value?.type === 'subscript' || m?.value?.type === 'attribute') {
            const sub = typeOfExpression(model, m.value, -1, m.line - 1, depth + 1);
            if (sub && SUBRESOURCE_TYPES.has(sub)) t = sub;
          }
          // `TEMPLATES = Path(__file__).parent / "templates"` at module level: a path, whatever joins it later.
          if (!t && m?.value && (m.value.type === 'binary_operator' || m.value.type === 'call' || m.value.type === 'attribute')) {
            const path = typeOfExpression(model, m.value, -1, m.line - 1, depth + 1);
            if (path === 'pathlib.Path') t = path;
          }
        }
      }
      // A call's text the value typer could not name (`Path("~/x").expanduser`): its assigned
      // expression may still be a path (`p = Path("~/x").expanduser()`).
      if (t && (t.includes('(') || PATH_RETURNING.has(t.slice(t.lastIndexOf('.') + 1))) && depth < 12) {
        const a = lastLocalAssignment(model, node.text, fnIndex, line)
          ?? (fnIndex >= 0 && !model.functions[fnIndex]!.params.some((p) => p.name === node.text) ? lastLocalAssignment(model, node.text, -1, Number.MAX_SAFE_INTEGER) : null);
        if (a?.value && typeOfExpression(model, a.value, a.functionIndex, a.line - 1, depth + 1) === 'pathlib.Path') t = 'pathlib.Path';
      }
      if (t === 'builtins.open' || t === 'io.open' || t === 'codecs.open' || t === 'os.fdopen') t = 'io.TextIOWrapper';
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
      if (obj && attr && (obj.type === 'identifier' || obj.type === 'attribute' || obj.type === 'subscript' || obj.type === 'call') && depth < 6) {
        const sub = SUBRESOURCE_TYPES.get(typeOfExpression(model, obj, fnIndex, line, depth + 1) ?? '');
        if (sub) return sub;
      }
      if (obj?.type === 'identifier' && obj.text === 'self' && attr) {
        return valueTypeOf(model, `self.${attr}`, -1) ?? selfAttributeType(model, attr, depth + 1);
      }
      // `bundle.archive` on an instance of a class of this file: its property's return annotation.
      if (obj && attr && depth < 4) return memberType(model, typeOfExpression(model, obj, fnIndex, line, depth + 1), attr, true);
      return null;
    }
    case 'subscript': {
      const value = node.childForFieldName('value');
      const sub = value && depth < 4 ? SUBRESOURCE_TYPES.get(typeOfExpression(model, value, fnIndex, line, depth + 1) ?? '') : undefined;
      if (sub) return sub;
      if (value?.type === 'attribute' && value.childForFieldName('attribute')?.text === 'parents') {
        return typeOfExpression(model, value, fnIndex, line);
      }
      return null;
    }
    default:
      return null;
  }
}

const RECEIVER_LIBRARIES = /^(pathlib|requests|httpx|urllib3|socket|subprocess|io|typing|boto3|smtplib|pymongo|elasticsearch|opensearchpy|openai|anthropic|sendgrid|slack_sdk|slack|twilio|qdrant_client|pymilvus|chromadb|pysolr|docker|kubernetes)(\.|$)/;
const receiverLibraryMemo = new WeakMap<FileModel, boolean>();

/** Typed receivers come from these libraries; a file importing none of them has none. */
function importsReceiverLibrary(model: FileModel): boolean {
  let v = receiverLibraryMemo.get(model);
  if (v === undefined) {
    v = false;
    for (const q of model.imports.values()) if (RECEIVER_LIBRARIES.test(q)) v = true;
    // `os.fdopen(fd)` and the builtin `open()` give a file object whatever else the file imports.
    if (!v && /\b(fd)?open\(/.test(model.source)) v = true;
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

/**
 * The annotated type of a property (`property`) or a method's return (`!property`) of a class
 * defined in this file, on a receiver typed as that class; null otherwise.
 */
function memberType(model: FileModel, receiverType: string | null, name: string, property: boolean): string | null {
  if (!receiverType) return null;
  const cls = receiverType.replace(/^@/, '').replace(/\(\)$/, '');
  const short = cls.slice(cls.lastIndexOf('.') + 1);
  for (const fn of model.functions) {
    if (fn.className !== short || fn.name !== name || fn.parent < 0 && !fn.className || !fn.returnType) continue;
    if (cls !== short && !cls.endsWith(`${model.moduleName}.${short}`) && cls !== `${model.moduleName}.${short}`) continue;
    const isProperty = fn.decoratorNames.some((d) => /(^|\.)(property|cached_property)$/.test(d));
    if (isProperty !== property) continue;
    const t = annotationType(model, fn.returnType);
    return t && PATH_TYPES.has(t.replace(/^@/, '')) ? 'pathlib.Path' : t;
  }
  return null;
}

/** `self.client = httpx.Client()` anywhere in the file gives `self.client` that type. */
function selfAttributeType(model: FileModel, attr: string, depth: number): string | null {
  if (depth > 8) return null;
  for (const a of assignmentsTo(model, `self.${attr}`)) {
    if (a.annotation) return a.annotation;
    let v = a.value;
    if (v?.type === 'call') {
      // `self.x = self.x.copy()` refers to itself: the depth ends the chase.
      const t = typeOfExpression(model, v, a.functionIndex, a.line, depth + 1);
      if (t) return t;
    }
    v = null;
  }
  return propertyType(model, attr);
}

/** Appended to a blocking call's name in effects and messages when it reads a file shipped with the code. */
export const BUNDLED_FILE = ' (a file shipped with the code)';

/**
 * A read of a file shipped with the code: a path rooted at the module's own `__file__`
 * (`Path(__file__).parent / "prompt.txt"`, `os.path.join(os.path.dirname(__file__), ...)`),
 * directly or through a name bound once to one (a module constant, a local), or a package resource
 * (`importlib.resources`, `pkgutil.get_data`, `pkg_resources.resource_string`). Such files are
 * small and part of the install; after the first read the page cache serves them. Only reads:
 * `open(p)` in a read mode, `read_text`/`read_bytes`.
 */
export function readsBundledFile(model: FileModel, call: CallInfo): boolean {
  if (!model.source.includes('__file__') && !/\b(importlib\.resources|importlib_resources|pkgutil|pkg_resources)\b/.test(model.source)) return false;
  const q = call.qualifiedName ?? '';
  if (/^(importlib\.resources|importlib_resources)\.(read_text|read_binary|open_text|open_binary)$|^pkgutil\.get_data$|^pkg_resources\.resource_(string|stream)$/.test(q)) return true;
  let path: SyntaxNode | null = null;
  if (q === 'builtins.open' || q === 'io.open' || q === 'codecs.open') {
    const args = call.node.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
    const mode = args.find((a, i) => (i === 1 && a.type !== 'keyword_argument') || (a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'mode'));
    const modeText = mode?.type === 'keyword_argument' ? mode.childForFieldName('value')?.text : mode?.text;
    if (modeText && !/^[rRbB]*['"][rbt]*['"]$/.test(modeText)) return false;
    path = args[0]?.type === 'keyword_argument' ? null : args[0] ?? null;
  } else if (/^(read_text|read_bytes)$/.test(call.method) && call.receiver) {
    path = call.receiver;
  } else if (call.method === 'open' && call.receiver && !q.startsWith('builtins.')) {
    // `Path.open()` / `(HERE / "x.json").open("rb")`: a read unless a mode says otherwise.
    const args = call.node.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
    const mode = args.find((a, i) => (i === 0 && a.type !== 'keyword_argument') || (a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'mode'));
    const modeText = mode?.type === 'keyword_argument' ? mode.childForFieldName('value')?.text : mode?.text;
    if (modeText && !/^[rRbB]*['"][rbt]*['"]$/.test(modeText)) return false;
    path = call.receiver;
  } else if (/^(read|readline|readlines|seek|close)$/.test(call.method) && call.receiver) {
    return readsBundledValue(model, call, call.receiver);
  } else return false;
  return rootedAtOwnFile(model, path, call.functionIndex, 0);
}

/**
 * Is `value`, used at `at`, what a read of a file shipped with the code gives ({@link readsBundledFile}):
 * the file object of such an `open` — inline (`open(p).read()`), or named (`with open(p) as f`,
 * `f = open(p)`) — or the text read from one (`Path(__file__).with_name("x.json").read_text()`,
 * inline or through a name bound once to it)?
 */
export function readsBundledValue(model: FileModel, at: CallInfo, value: SyntaxNode): boolean {
  if (value.type === 'call') {
    const inner = callAt(model, value);
    return !!inner && readsBundledFile(model, inner);
  }
  if (value.type !== 'identifier') return false;
  for (const wi of at.withs) {
    const w = model.withs[wi]!;
    const item = w.functionIndex === at.functionIndex ? w.items.find((i) => i.alias === value.text) : undefined;
    const opened = item && item.value.type === 'call' ? callAt(model, item.value) : null;
    if (opened) return readsBundledFile(model, opened);
  }
  const bound = assignmentsTo(model, value.text).filter((a) => a.functionIndex === at.functionIndex && a.line <= at.line && !a.fromWith);
  const v = bound.length === 1 && bound[0]!.value?.type === 'call' ? callAt(model, bound[0]!.value) : null;
  return !!v && readsBundledFile(model, v);
}

function rootedAtOwnFile(model: FileModel, node: SyntaxNode | null, fnIndex: number, depth: number): boolean {
  if (!node || depth > 3) return false;
  let rooted = /\b__file__\b|\bimportlib\.resources\.files\(|\bfiles\(\s*(__package__|__name__|['"])/.test(node.text);
  // Every name the path is built from should be fixed by the code: an import (`os`, `Path`), or a
  // name (or `cls.X`/`self.X`) bound once to such a path. A variable part (a caller's file name)
  // makes it any file, unless the code fixes the kind of file: a resource extension it appends
  // (`name + ".txt"`), outside a folder of data (uploads, media, cache, ...).
  let variable = false;
  for (const id of node.type === 'identifier' ? [node] : node.descendantsOfType('identifier')) {
    const text = id.text;
    if (text === '__file__' || text === '__name__' || text === '__package__' || text === 'self' || text === 'cls') continue;
    const parent = id.parent;
    const isAttr = parent?.type === 'attribute' && parent.childForFieldName('attribute')?.id === id.id;
    // The attribute of `os.path.join`: not a value; that of `cls.PROMPTS_DIR`: a class constant.
    if (isAttr && !/^(self|cls)$/.test(parent!.childForFieldName('object')?.text ?? '')) continue;
    if (parent?.type === 'keyword_argument' && parent.childForFieldName('name')?.id === id.id) continue;
    if (!isAttr && (model.imports.has(text) || /^(str|Path|PurePath|open)$/.test(text))) continue;
    const own = isAttr ? [] : assignmentsTo(model, text).filter((a) => a.functionIndex === fnIndex);
    // A parameter of the function is the caller's value, whatever a module constant of that name holds.
    const param = !isAttr && fnIndex >= 0 && model.functions[fnIndex]!.params.some((p) => p.name === text);
    const bound = own.length || param ? own : assignmentsTo(model, text).filter((a) => a.functionIndex < 0 || isAttr);
    if (bound.length === 1 && rootedAtOwnFile(model, bound[0]!.value, bound[0]!.functionIndex, depth + 1)) rooted = true;
    else variable = true;
  }
  if (!rooted) return false;
  return !variable || (RESOURCE_EXTENSION.test(node.text) && !DATA_FOLDER.test(node.text));
}

/** A file kind that ships with code: text, templates, schemas, prompts, SQL. */
const RESOURCE_EXTENSION = /['"][^'"]*\.(txt|json|ya?ml|toml|html?|jinja2?|j2|tmpl|md|sql|xml|csv|ini|cfg|conf)['"]/;
/** Folders of data the service writes or receives, next to the code or not. */
const DATA_FOLDER = /['"][^'"]*\b(uploads?|media|data|storage|cache|tmp|temp|files|logs?|output|downloads?|models?)\b[^'"]*['"]/i;
