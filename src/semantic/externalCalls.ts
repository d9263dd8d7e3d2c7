/**
 * Calls that leave the process: network clients (HTTP, gRPC, SMTP, S3, brokers), SDK clients
 * (PyGithub, jira, Slack, SendGrid, Google API clients, pysolr's `Solr`: every method is a remote call) and file I/O.
 * One classifier for every rule that asks "does this wait on the outside world?" (a transaction
 * held open across it, a session held through it).
 */
import type { CallInfo, FileModel } from './model.js';
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, isOffloadCallee, resolveName } from './model.js';
import { receiverType } from './valueTypes.js';

export type ExternalKind = 'network' | 'file';

const NETWORK_MODULES = /^(httpx|requests|aiohttp|urllib3|urllib\.request|grpc|grpclib|smtplib|aiosmtplib|boto3|botocore|aiobotocore|aioboto3|google\.cloud|azure\.storage|stripe|twilio|slack_sdk|openai|anthropic|elasticsearch|aiokafka|kafka|pika|aio_pika|nats|paramiko|ftplib|socket|litestar_email|fastapi_mail|flask_mail|flask_mailman|django\.core\.mail|resend|firebase_admin\.messaging)(\.|$)/;
const NETWORK_METHODS = new Set(['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'request', 'send', 'stream', 'fetch', 'sendmail', 'send_message', 'upload_file', 'upload_fileobj', 'download_file', 'download_fileobj', 'put_object', 'get_object', 'delete_object', 'copy_object', 'publish', 'invoke', 'urlopen']);
/**
 * SDKs whose client methods are remote calls whatever their name (`repo.create_issue()`,
 * `jira.transition_issue()`, a language model's `client.chat.completions.create(...)`, a vector
 * store's `client.search(...)`), except those that only configure the client ({@link SDK_LOCAL_METHODS}).
 */
const SDK_MODULES = /^(github|jira|pysolr|atlassian|slack_sdk|slack|sendgrid|googleapiclient|hubspot|mailchimp3|mailchimp_marketing|twilio|stripe|openai|anthropic|cohere|mistralai|groq|qdrant_client|pinecone|pymilvus|minio|chromadb\.(Async)?(Http|Cloud)Client)(\.|$|\()/;
/** Methods of an SDK client that configure or close it, not requests (`client.with_options(timeout=5)`, `await client.close()`). */
/**
 * (minio's presigned URLs are signed in the process once the bucket's region is known: given to
 * `Minio(region=...)`, or asked once per bucket and cached on the client.)
 */
const SDK_LOCAL_METHODS = new Set(['with_options', 'copy', 'close', 'aclose', 'presigned_get_object', 'presigned_put_object', 'presigned_post_policy', 'get_presigned_url']);
/** Of those, the ones that hand back a plain value (a URL, a form), not a client. */
const SDK_VALUE_METHODS = new Set(['presigned_get_object', 'presigned_put_object', 'presigned_post_policy', 'get_presigned_url']);
/**
 * What an SDK call hands back that is built in the process: pymilvus's schemas and index
 * parameters (`client.prepare_index_params()`, `create_schema()`, `CollectionSchema`), whose
 * `add_index`/`add_field` fill a local object.
 */
const SDK_LOCAL_BUILDERS = /\.(prepare_\w+|create_schema|create_field_schema)\(\)|\b(CollectionSchema|FieldSchema|IndexParams)\(\)/;
/**
 * OAuth2 client libraries whose clients are often picked at run time (`clients[provider]`), so the
 * receiver has no type: their request methods count by name in a file that imports the library,
 * unless the receiver is typed as something else.
 */
const OAUTH_MODULES = /^(httpx_oauth)(\.|$)/;
/** httpx_oauth `BaseOAuth2` methods that send a request (`get_authorization_url` only builds a URL). */
const OAUTH_REQUESTS = new Set(['get_access_token', 'refresh_token', 'revoke_token', 'get_id_email', 'get_profile']);
const FILE_FUNCTIONS = /^(builtins\.open|io\.open|os\.fdopen|aiofiles\.open|shutil\.\w+|os\.(remove|unlink|rename|replace|makedirs|mkdir|rmdir))$/;
const PATH_IO = new Set(['read_text', 'read_bytes', 'write_text', 'write_bytes', 'open', 'unlink', 'touch', 'mkdir', 'rename', 'replace']);

const TYPED_EXTERNAL = new WeakMap<FileModel, boolean>();
/** Modules whose objects' methods leave the process: a receiver can only be typed as one through an import of them. */
const EXTERNAL_IMPORT = /^(pathlib|anyio|aiofiles|chromadb|litellm)(\.|$)/;

/**
 * Can a receiver of this file be typed as a network client, an SDK object, a path or an open
 * file? Only through an import of those modules, or a call of `open` (once per file): typing
 * every method call's receiver of every file was most of this classifier's cost.
 */
function mayTypeExternal(model: FileModel): boolean {
  let v = TYPED_EXTERNAL.get(model);
  if (v === undefined) {
    v = model.source.includes('open(');
    if (!v) for (const q of model.imports.values()) if (NETWORK_MODULES.test(q) || SDK_MODULES.test(q) || EXTERNAL_IMPORT.test(q) || OAUTH_MODULES.test(q)) { v = true; break; }
    TYPED_EXTERNAL.set(model, v);
  }
  return v;
}

export interface ExternalCall {
  kind: ExternalKind;
  /** Readable name: `httpx.AsyncClient.post`, `open`. */
  what: string;
}

/**
 * A call that leaves the process: an HTTP/gRPC/SMTP/S3 client call (the module function, or a
 * method on a client built from one of those modules), or file I/O.
 */
/** Calls that start a coroutine as a task of its own: the caller does not wait for it. */
export const TASK_SPAWNER = /(^|\.)(create_task|ensure_future|start_soon|run_coroutine_threadsafe)$/;

/**
 * `asyncio.create_task(client.post(...))`, `tg.start_soon(...)`: the call's coroutine is handed
 * to a task that runs on its own; the function goes on without waiting for it.
 */
export function spawnedTask(node: SyntaxNode): boolean {
  const args = node.parent;
  if (args?.type !== 'argument_list') return false;
  const spawner = args.parent;
  if (spawner?.type !== 'call' || !TASK_SPAWNER.test(spawner.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '')) return false;
  return !taskWaitedFor(spawner);
}

/** Calls that wait for the tasks handed to them when awaited. */
const TASK_WAITERS = /(^|\.)(gather|wait|wait_for|shield|as_completed)$/;
/** `async with` items that wait for every task started in the block when it ends. */
const TASK_GROUP = /(^|\.)(TaskGroup|create_task_group|open_nursery)\s*\(/;

/**
 * Does the function that starts the task wait for it before it goes on past the code around it:
 * the task awaited where it is made (`await create_task(f())`), handed to an awaited `gather` /
 * `wait` (`await gather(create_task(a()), ensure_future(b()))`), bound to a name the function
 * awaits or gathers later (`t = create_task(f()); ...; await t`), or started in a task group
 * (`async with TaskGroup() as tg: tg.create_task(f())`) whose block ends without a `yield` in it
 * (a lifespan that yields inside the block serves requests beside the task)?
 */
function taskWaitedFor(spawner: SyntaxNode): boolean {
  let up = spawner.parent;
  while (up && (up.type === 'parenthesized_expression' || up.type === 'list' || up.type === 'tuple' || up.type === 'list_splat')) up = up.parent;
  if (up?.type === 'await') return true;
  if (up?.type === 'argument_list') {
    const waiter = up.parent;
    if (waiter?.type === 'call' && TASK_WAITERS.test(waiter.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '') && waiter.parent?.type === 'await') return true;
  }
  let fn: SyntaxNode | null = spawner.parent;
  while (fn && fn.type !== 'function_definition') fn = fn.parent;
  // Up to the function's first `yield` (a lifespan serves requests from there).
  const beforeYield = (from: number) => {
    const rest = fn!.text.slice(from - fn!.startIndex);
    const y = /\byield\b/.exec(rest)?.index;
    return y === undefined ? rest : rest.slice(0, y);
  };
  // `tasks.append(create_task(f()))` then `await gather(*tasks)`: the list is waited for.
  const gathered = (list: string, from: number) =>
    new RegExp(`\\bawait\\s+[\\w.]*(gather|wait)\\s*\\(\\s*\\*?\\s*${list}\\b`).test(beforeYield(from));
  if (up?.type === 'argument_list' && fn) {
    const append = up.parent?.childForFieldName('function');
    const list = append?.type === 'attribute' && append.childForFieldName('attribute')?.text === 'append' ? append.childForFieldName('object') : null;
    if (list?.type === 'identifier' && gathered(list.text, up.endIndex)) return true;
  }
  if (up?.type === 'assignment' && up.childForFieldName('left')?.type === 'identifier' && fn) {
    const name = up.childForFieldName('left')!.text;
    // Up to the function's first `yield` (a lifespan serves requests from there; an await at
    // shutdown does not make the task startup work) and to the name's next binding.
    let after = fn.text.slice(up.endIndex - fn.startIndex);
    const cut = [/\byield\b/.exec(after)?.index, new RegExp(`(^|\\n)\\s*${name}\\s*=(?!=)`).exec(after)?.index].filter((i): i is number => i !== undefined);
    if (cut.length) after = after.slice(0, Math.min(...cut));
    const word = `\\b${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`;
    if (new RegExp(`\\bawait\\s+${word}|\\bawait\\s+[\\w.]*(gather|wait|wait_for|shield)\\s*\\([^\\n]*${word}`).test(after)) return true;
    // `t = create_task(f()); tasks.append(t); ...; await gather(*tasks)`.
    const list = new RegExp(`\\b([A-Za-z_]\\w*)\\.append\\(\\s*${word}\\s*\\)`).exec(after)?.[1];
    if (list && gathered(list, up.endIndex)) return true;
  }
  // `tg.create_task(...)` / `tg.start_soon(...)` on the alias of a task group's `async with`.
  const receiver = spawner.childForFieldName('function')?.childForFieldName('object')?.text;
  const alias = receiver?.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (let p: SyntaxNode | null = spawner.parent; p && (!fn || p.id !== fn.id); p = p.parent) {
    if (p.type !== 'with_statement') continue;
    const clause = p.namedChildren.find((c) => c.type === 'with_clause');
    const group = clause?.namedChildren.find((i) => TASK_GROUP.test(i.text) && (alias === undefined || new RegExp(`\\bas\\s+${alias}\\s*$`).test(i.text)));
    if (group) return !(p.childForFieldName('body')?.descendantsOfType('yield').length);
  }
  return false;
}

/**
 * Is a type path an instance of a network client or service SDK (`openai.AsyncOpenAI()`,
 * `httpx.AsyncClient()`, `stripe.StripeClient()`): every method a round trip? For the summary,
 * which exports such module-level objects to the files that import them.
 */
export function isNetworkClientType(t: string): boolean {
  return /\(\)$/.test(t) && (SDK_MODULES.test(t) || NETWORK_MODULES.test(t)) && !/^(httpx|requests|aiohttp)\.(get|post|put|patch|delete|head|options|request)\(\)$/.test(t);
}

export function externalCall(model: FileModel, call: CallInfo): ExternalCall | null {
  const q = call.qualifiedName;
  if (q && (NETWORK_MODULES.test(q) || LITELLM_REQUESTS.test(q))) return networkFunction(q);
  if (q && FILE_FUNCTIONS.test(q)) return { kind: 'file', what: q.replace(/^builtins\./, '') };
  if (!call.hasReceiver || !mayTypeExternal(model)) return null;
  const t = receiverType(model, call);
  // Typed as an instance of another class (`@app.auth.TokenStore`): not an OAuth client; a value
  // picked from a container (`clients.get(name)`, `_clients()[name]`) has no class to say so.
  if (OAUTH_REQUESTS.has(call.method) && (t?.startsWith('@') ? OAUTH_MODULES.test(t.slice(1)) : importsOAuthClient(model))) {
    return { kind: 'network', what: `httpx_oauth.OAuth2.${call.method}` };
  }
  if (!t) return null;
  const head = t.replace(/^@/, '');
  // What a client returned is data: a response's `.json()`, an SDK object's `.to_dict()`, a
  // dict-like resource's `.get("metadata")` (Stripe's objects are dict subclasses) read memory.
  if (LOCAL_DATA_METHODS.has(call.method) || (call.method === 'get' && !clientInstance(head) && dictKeyLookup(call))) return null;
  // What a local method of an SDK client built (a presigned URL: a string), or anything made from
  // it, is no client either: `url = client.presigned_get_object(...); url.startswith("http")`.
  if (SDK_MODULES.test(head) && [...head.matchAll(/\.([A-Za-z_]\w*)\(\)/g)].some((m) => SDK_VALUE_METHODS.has(m[1]!))) return null;
  if (head.startsWith('litellm.Router()') && LITELLM_REQUESTS.test(`litellm.Router().${call.method}`)) return { kind: 'network', what: `litellm.Router.${call.method}` };
  if ((NETWORK_MODULES.test(head) && NETWORK_METHODS.has(call.method))
    || (SDK_MODULES.test(head) && (/\(\)/.test(head) || t.startsWith('@')) && /^[a-z]/.test(call.method) && !SDK_LOCAL_METHODS.has(call.method) && !SDK_LOCAL_BUILDERS.test(`${head}.${call.method}()`) && !localModeClient(model, call))) {
    return { kind: 'network', what: `${head.replace(/\(\)$/, '').replace(/\(\)/g, '')}.${call.method}` };
  }
  if (/^(aiofiles\.open|builtins\.open)\(\)/.test(head) && /^(read|write|readlines|writelines)$/.test(call.method)) return { kind: 'file', what: `file.${call.method}` };
  if (/^(pathlib\.Path|anyio\.Path)/.test(head) && PATH_IO.has(call.method)) return { kind: 'file', what: `Path.${call.method}` };
  return null;
}

/**
 * LiteLLM's request functions (`litellm.completion`, `await litellm.acompletion(...)`, a `Router`'s
 * of the same names); its other helpers count tokens, price and describe models in the process.
 */
const LITELLM_REQUESTS = /^litellm\.(Router\(\)\.)?a?(completion|text_completion|embedding|image_generation|transcription|speech|moderation|responses|rerank)$/;

/**
 * A vector store's client opened in its local mode (`QdrantClient(":memory:")`,
 * `QdrantClient(path=...)`, `MilvusClient("./milvus.db")`): it runs in the process, over no network.
 * Read from the assignment of the receiver's first name.
 */
function localModeClient(model: FileModel, call: CallInfo): boolean {
  const root = call.dottedReceiver?.split('.')[0];
  if (!root) return false;
  const selfAttr = root === 'self';
  const name = selfAttr ? call.dottedReceiver!.split('.').slice(0, 2).join('.') : root;
  const cls = call.functionIndex >= 0 ? model.functions[call.functionIndex]!.className : null;
  const all = assignmentsTo(model, name).filter((a) => !!a.value && VECTOR_CLIENT.test(a.value.text));
  // The name's own scope: the function's local, else the module's; `self.x` in the same class.
  const scoped = selfAttr ? all.filter((a) => a.functionIndex >= 0 && model.functions[a.functionIndex]!.className === cls)
    : all.some((a) => a.functionIndex === call.functionIndex) ? all.filter((a) => a.functionIndex === call.functionIndex) : all.filter((a) => a.functionIndex < 0);
  // Local only when every client built there is (not `QdrantClient(":memory:") if testing else QdrantClient(url=...)`).
  return scoped.length > 0 && scoped.every((a) => [...a.value!.text.matchAll(VECTOR_CLIENT_CALL)].every((m) => LOCAL_MODE.test(m[0])));
}

const VECTOR_CLIENT = /\b(Async)?(QdrantClient|MilvusClient)\s*\(/;
/** A client construction up to its first closing parenthesis (arguments are mostly literals and names). */
const VECTOR_CLIENT_CALL = /\b(Async)?(QdrantClient|MilvusClient)\s*\([^)]*\)?/g;
/**
 * Local modes: Qdrant's `":memory:"` (first argument or `location=`) and `path=`; Milvus Lite's
 * `.db` file as the URI. (`location=` with anything else is a URL.)
 */
const LOCAL_MODE = /^(Async)?QdrantClient\s*\(\s*["']:memory:["']|^(Async)?QdrantClient\s*\((?:[^)]*[,\s])?\s*(location\s*=\s*["']:memory:["']|path\s*=)|^(Async)?MilvusClient\s*\(\s*(uri\s*=\s*)?["'][^"':]*\.db["']/;

/**
 * Functions of the network modules that work in the process: `requests.utils.quote`, the
 * exception and status tables, and `socket`'s own helpers (`gethostname`, `inet_aton`, `htons`;
 * its name lookups — `getaddrinfo`, `gethostbyname`, `getfqdn` — do ask a resolver).
 */
const LOCAL_HELPERS = /^(requests|httpx|aiohttp)\.(utils|structures|exceptions|status_codes|codes|compat|cookies|auth|hooks|helpers|typedefs)\.|^socket\.(gethostname|inet_\w+|htons|htonl|ntohs|ntohl|setdefaulttimeout|getdefaulttimeout|if_\w+|CMSG_\w+|sethostname|socketpair|fromfd|dup)$/;

/** Server-side modules of the network libraries: what they build is this process's response. */
const SERVER_SIDE = /^aiohttp\.(web|web_\w+)(\.|$)/;

/**
 * A client object itself (`httpx.Client`, `requests.Session`, `aiohttp.ClientSession`, an SDK's
 * `StripeClient`), whose `get("users")` is a request; not what a request returned
 * (`httpx.Client.get().headers`, a Stripe resource).
 */
function clientInstance(head: string): boolean {
  const path = head.replace(/\(\)$/, '');
  if (path.includes('()')) return false;
  const last = path.slice(path.lastIndexOf('.') + 1);
  return /(Client|ClientSession|^Session|PoolManager|ConnectionPool|Elasticsearch|OpenSearch)$/.test(last);
}

/** Methods of a client's responses and an SDK's resource objects that read what is already in memory. */
const LOCAL_DATA_METHODS = new Set(['to_dict', 'to_dict_recursive', 'keys', 'values', 'items', 'json', 'raise_for_status', 'model_dump', 'model_dump_json', 'to_json']);

/**
 * `obj.get("metadata")`, `obj.get("id", None)`: a lookup by a literal key, not a request — a
 * URL or path (`client.get("/v1/users")`, `session.get("https://...")`) has a `/` or a `:`.
 */
function dictKeyLookup(call: CallInfo): boolean {
  const first = call.node.childForFieldName('arguments')?.namedChildren.find((a) => a.type !== 'comment');
  if (first?.type !== 'string' || first.text.startsWith('f')) return false;
  return /^[rbuRBU]*(["'])[\w.\- ]*\1$/.test(first.text);
}

const OAUTH_FILES = new WeakMap<FileModel, boolean>();

/** Does the file import an OAuth2 client library ({@link OAUTH_MODULES})? */
function importsOAuthClient(model: FileModel): boolean {
  let v = OAUTH_FILES.get(model);
  if (v === undefined) {
    v = [...model.imports.values()].some((q) => OAUTH_MODULES.test(q));
    OAUTH_FILES.set(model, v);
  }
  return v;
}

const CONTAINER_VALUE = new Set(['dictionary', 'list', 'set', 'dictionary_comprehension', 'list_comprehension', 'set_comprehension']);
const CONTAINER_TYPE = /^(typing\.)?(dict|list|set|Dict|List|Set|defaultdict|OrderedDict|Mapping|MutableMapping)\b/;

/**
 * Is the receiver a module-level dict, list or set of this file (`_plugins: dict[str, P] = {}`,
 * `registry = {}`)? A registry looked up in memory, whatever it is named.
 */
function moduleContainer(model: FileModel, receiver: string): boolean {
  if (!/^[A-Za-z_]\w*$/.test(receiver)) return false;
  return assignmentsTo(model, receiver).some((a) => a.functionIndex < 0 && a.target === receiver
    && ((a.value !== null && (CONTAINER_VALUE.has(a.value.type) || /^(dict|list|set|defaultdict|OrderedDict)\(/.test(a.value.text)))
      || (a.annotation !== null && CONTAINER_TYPE.test(a.annotation))));
}

/**
 * A call that leaves the process and waits for another system: a network client call, a method
 * of an integration object (`slack_client.post(...)`, `mailer.send(...)`), or a call named like
 * sending (`send_email(...)`, `plugin.instance.send(...)`) — not an in-process signal's
 * `send` (`signals.created.send(...)`), nor a plugin registry's lookup (`plugin.get_actions()`),
 * which {@link outsideEffect} counts because a plugin may do anything. The query family uses it
 * to tell a per-item workflow dominated by such a call. Returns the call's text, or null.
 */
export function leavesProcess(model: FileModel, call: CallInfo): string | null {
  if (externalCall(model, call)?.kind === 'network') return call.calleeText;
  const receiver = receiverText(call);
  if (call.hasReceiver && receiver && !moduleContainer(model, receiver) && INTEGRATION.test(receiver) && !SQL_OPERATOR.test(call.method) && !/^[A-Z]/.test(call.method)) return call.calleeText;
  if (!SENDS.test(call.method ?? '') || (receiver && SIGNAL.test(receiver))) return null;
  // The project's own function or method named like sending (`publish_totals(...)`,
  // `self.notify(...)`): what its body calls decides, through the call graph.
  if (projectCallee(model, call, receiver)) return null;
  return call.calleeText;
}

/** A call of the project's own code: a function of this file or of the project's package, or a method on `self`/`cls`. */
function projectCallee(model: FileModel, call: CallInfo, receiver: string | null): boolean {
  if (call.hasReceiver) return !!receiver && (/^(self|cls)(\.|$)/.test(receiver) || ownModule(model, receiver));
  if (model.functions.some((f) => f.parent < 0 && !f.className && f.name === call.calleeText)) return true;
  const q = call.qualifiedName;
  const own = model.moduleName.split('.')[0]!;
  return !!q && (q === own || q.startsWith(`${own}.`));
}

/** The receiver as dotted text (`self.client`, `plugin.instance`), or null when it is no name or attribute. */
function receiverText(call: CallInfo): string | null {
  return call.dottedReceiver ?? (call.receiver && (call.receiver.type === 'identifier' || call.receiver.type === 'attribute') ? call.receiver.text.replace(/\s+/g, '') : null);
}

/**
 * SQLAlchemy's column and query operators (`Webhook.owner_id.in_(ids)`, `Model.name.ilike(q)`):
 * SQL expressions built in memory, whatever the model's name says.
 */
const SQL_OPERATOR = /^(in_|not_in|notin_|is_|is_not|isnot|like|ilike|not_like|not_ilike|notlike|notilike|contains|startswith|endswith|between|any_|all_|op|asc|desc|nulls_first|nulls_last|label|cast|collate|match|regexp_match|distinct|where|filter|filter_by|order_by|group_by|join|outerjoin|options|limit|offset|subquery|scalar_subquery|correlate|values|returning|select_from|with_only_columns)$/;

/** Receivers that are in-process signals (blinker, Django): their `send` calls this process's receivers. */
const SIGNAL = /(^|[._])\w*signals?(\.|$)|^(pre|post)_(save|delete|init|migrate)$/i;

/** Receivers named like a plugin: an integration unless the project's own plugin module (see {@link ownModule}). */
const PLUGIN = /(^|[._])\w*plugin\w*(\.|$)/i;

/**
 * Is the receiver a module of the file's own package (`plugins.PluginImplementations(...)` with
 * `from ckan import plugins` in ckan)? The project's own plugin registry is an extension point
 * inside the process, followed by the call graph: not an integration.
 */
function ownModule(model: FileModel, receiver: string): boolean {
  const dot = receiver.indexOf('.');
  const imported = model.imports.get(dot < 0 ? receiver : receiver.slice(0, dot));
  if (imported === undefined) return false;
  const own = model.moduleName.split('.')[0]!;
  return imported === own || imported.startsWith(`${own}.`);
}

/**
 * A plugin asked, with no argument, for something it describes, its result used (`schema =
 * plugin.show_package_schema()`, `if plugin.is_enabled():`): its schema, configuration or
 * capabilities, read in the process, not an action outside it. Handed data (`plugin.instance.get(doc_id)`
 * fetches a document from another system), asked to fetch or read (`plugin.read()`,
 * `plugin.get_token()`), or called for its effect alone (`plugin.sync()`), it stays an integration.
 */
function asksPlugin(call: CallInfo): boolean {
  if (!call.emptyArgs || !PLUGIN_QUESTION.test(call.method)) return false;
  const up = call.node.parent?.type === 'await' ? call.node.parent.parent : call.node.parent;
  return up?.type !== 'expression_statement';
}

const PLUGIN_QUESTION = /^(is|has|can|supports)_\w+$|_(schema|schemas|config|settings|options|name|names|type|types)$/;

/** Receivers that are integrations with other systems: API/SDK clients, mailers, notifiers (plugins: {@link PLUGIN}). */
const INTEGRATION = /(^|[._])(\w*(client|sdk|gateway|mailer|notifier|webhook)\w*|api|\w+_api|slack|jira|github|smtp)(\.|$)/i;

/** Methods and functions named like an action outside the process: sending, publishing, notifying, charging. */
const SENDS = /^(send|send_\w+|\w+_send|sendmail|send_message|publish|publish_\w+|notify|notify_\w+|deliver|deliver_\w+|charge|refund|upload|upload_\w+|post_message|enqueue|delay|apply_async|send_task)$/;

/**
 * An awaited offload of a network client's function (`await asyncio.to_thread(requests.post, url)`,
 * `await loop.run_in_executor(None, partial(requests.post, url))`): off the event loop, so not a
 * blocking call, but the coroutine (and any transaction it holds) waits for the request.
 */
export function awaitedOffloadCall(model: FileModel, call: CallInfo): ExternalCall | null {
  const fn = awaitedOffloadTarget(call);
  if (!fn) return null;
  const q = resolveName(model, fn.text.replace(/\s+/g, ''));
  const ext = q ? networkFunction(q) : null;
  return ext ? { kind: ext.kind, what: `${ext.what}\` through \`${call.calleeText}` } : null;
}

/**
 * The function an awaited offload call runs in a thread (`await asyncio.to_thread(f, x)`,
 * `await loop.run_in_executor(None, f, x)`, through `functools.partial(f, x)` or a lambda that
 * makes one call, `lambda: f(x)`): the name's node,
 * where the summary records the function passed as a value. Null for anything else.
 */
export function awaitedOffloadTarget(call: CallInfo): SyntaxNode | null {
  if (!call.awaited || !isOffloadCallee(call.calleeText)) return null;
  const args = (call.node.childForFieldName('arguments')?.namedChildren ?? []).filter((a) => a.type !== 'keyword_argument' && a.type !== 'comment');
  let fn: SyntaxNode | undefined = call.method === 'run_in_executor' ? args[1] : args[0];
  if (fn?.type === 'call' && /(^|\.)partial$/.test(fn.childForFieldName('function')?.text ?? '')) fn = fn.childForFieldName('arguments')?.namedChildren[0];
  // `lambda: fetch_rates(code)`: the thread runs the one call the lambda makes (its name's node
  // starts that call, where the summary records the edge).
  if (fn?.type === 'lambda') {
    const body = fn.childForFieldName('body');
    fn = body?.type === 'call' ? body.childForFieldName('function') ?? undefined : undefined;
  }
  return fn && (fn.type === 'identifier' || fn.type === 'attribute') ? fn : null;
}

/** A network client's module function by qualified name (`requests.post`); constructors make no request. */
export function networkFunction(q: string): ExternalCall | null {
  if (LITELLM_REQUESTS.test(q)) return { kind: 'network', what: q };
  // aiohttp's server side (`web.json_response`, `web.run_app`) builds and serves this process's
  // responses: no request leaves the process.
  if (!NETWORK_MODULES.test(q) || SERVER_SIDE.test(q) || LOCAL_HELPERS.test(q)) return null;
  const last = q.slice(q.lastIndexOf('.') + 1);
  if (/^[A-Z]/.test(last) || last === 'client' || last === 'resource' || last === 'Session' || last === 'session') return null;
  return { kind: 'network', what: q };
}

/**
 * Does a network call only read from the remote side (`requests.get`, `client.get(...)`,
 * `stripe.Charge.retrieve_async`, `s3.get_object`, `ec2.describe_instances`, `*.list_*`)? Made
 * inside a transaction it still holds the connection for a round trip, but it sends nothing a
 * failed commit would leave behind. By the method's name: HTTP GET/HEAD/OPTIONS and the SDKs'
 * read verbs.
 */
export function readOnlyRemote(what: string): boolean {
  const last = what.slice(what.lastIndexOf('.') + 1).replace(/_async$/, '');
  return READ_VERB.test(last);
}
const READ_VERB = /^(get|head|options|retrieve|list|search|fetch|describe|lookup)(_(?!or_|and_)\w+)?$/;

/**
 * A call that acts outside the database: a network client call (HTTP, SMTP, S3, brokers — see
 * {@link externalCall}), a method of an integration object (`plugin.instance.get(...)`,
 * `slack_client.post(...)`; not the project's own plugin module, nor a module-level dict), or a
 * call named like sending or publishing. The rules use it to keep
 * quiet, never to report: a commit or flush per item after it records what was done outside.
 * Returns the call's text, or null.
 */
export function outsideEffect(model: FileModel, call: CallInfo): string | null {
  if (externalCall(model, call)?.kind === 'network') return call.calleeText;
  const receiver = receiverText(call);
  // A class of the integration's module built (`restclient.APIException(msg)`, `slack.WebClient(token)`): no action yet.
  if (call.hasReceiver && receiver && !moduleContainer(model, receiver) && !SQL_OPERATOR.test(call.method) && !/^[A-Z]/.test(call.method)
    && (INTEGRATION.test(receiver) || (PLUGIN.test(receiver) && !ownModule(model, receiver) && !asksPlugin(call)))) return call.calleeText;
  return SENDS.test(call.method) ? call.calleeText : null;
}
