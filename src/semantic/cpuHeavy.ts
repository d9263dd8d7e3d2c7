/**
 * CPU-heavy calls: work that holds the calling thread for a long time by design (password
 * hashing and key derivation) or in proportion to a payload (parsing or hashing a whole file,
 * image and document decoding, compression). Asked by the event-loop rules and by the
 * transaction rules (a transaction held open while the CPU works).
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { CallInfo, FileModel } from './model.js';
import { assignmentsTo, resolveName } from './model.js';
import { networkFunction } from './externalCalls.js';
import { receiverType } from './valueTypes.js';


/** Heavy whatever the input. */
const ALWAYS_HEAVY = new Set([
  'bcrypt.hashpw', 'bcrypt.checkpw', 'bcrypt.kdf', 'hashlib.pbkdf2_hmac', 'hashlib.scrypt', 'hashlib.file_digest',
  'cv2.imread', 'cv2.imdecode', 'cv2.resize', 'lxml.etree.parse', 'lxml.etree.fromstring',
  'lxml.etree.XML', 'lxml.html.parse', 'lxml.html.fromstring', 'lxml.html.document_fromstring',
  'bs4.BeautifulSoup', 'json.load', 'xml.etree.ElementTree.parse', 'xml.dom.minidom.parse',
  'gzip.compress', 'gzip.decompress', 'zlib.compress', 'zlib.decompress', 'bz2.compress', 'bz2.decompress',
  'lzma.compress', 'lzma.decompress', 'scrypt.hash',
  // Documents parsed in Python: a PDF's object tree, a workbook's or a Word file's XML.
  'pypdf.PdfReader', 'PyPDF2.PdfReader', 'PyPDF2.PdfFileReader', 'pdfplumber.open', 'fitz.open', 'pymupdf.open',
  'openpyxl.load_workbook', 'docx.Document', 'pptx.Presentation',
]);
/** Heavy when the input is a whole file's content. */
const PAYLOAD_HEAVY = new Set([
  'json.loads', 'orjson.loads', 'ujson.loads', 'yaml.safe_load', 'yaml.load', 'pickle.loads',
  'hashlib.sha256', 'hashlib.sha1', 'hashlib.sha512', 'hashlib.sha384', 'hashlib.sha224', 'hashlib.md5',
  'hashlib.blake2b', 'hashlib.blake2s', 'hashlib.sha3_256', 'hashlib.sha3_512', 'hashlib.new',
  'base64.b64encode', 'base64.b64decode',
]);
/** Parsers slow enough that parsing once per item of a loop is CPU work worth a thread. */
const LOOP_HEAVY = new Set(['yaml.safe_load', 'yaml.load', 'yaml.full_load', 'yaml.unsafe_load', 'yaml.safe_load_all', 'yaml.load_all', 'pickle.loads']);
/** DataFrame methods that serialise every row. */
const DATAFRAME_WRITERS = new Set(['to_excel', 'to_csv', 'to_parquet', 'to_feather', 'to_json', 'to_html', 'to_xml', 'to_stata', 'to_orc']);
/** A DataFrame made by its constructor or read by `pandas.read_*`. */
const DATAFRAME_TYPES = /^@?pandas\.(core\.frame\.)?(DataFrame|read_(csv|excel|json|parquet|table|xml|html|feather|fwf|pickle|sql|sql_query))(\(\))?$/;
/**
 * `PIL.Image.open` is lazy: it reads the header (size, mode, format) and decodes no pixel. The
 * decoding happens in the methods that need the pixels, on the image it returned — or on the image
 * one of them returned (`img = img.convert("RGB")`; `img.save(...)` encodes it).
 */
const IMAGE_DECODERS = new Set(['load', 'convert', 'resize', 'thumbnail', 'save', 'tobytes', 'getdata', 'rotate', 'transpose', 'crop', 'filter', 'quantize', 'reduce', 'paste', 'split', 'getcolors', 'histogram']);
const IMAGE_TYPES = /^@?PIL\.Image\.(open|Image|new)(\(\))?(\.(convert|resize|rotate|transpose|crop|filter|quantize|reduce|copy)\(\))*$/;
/** Embedding and ranking models run in the process: `encode`/`predict` is a forward pass over every input. */
const MODEL_TYPES = /^@?sentence_transformers(\.\w+)*\.(SentenceTransformer|CrossEncoder)(\(\))?$/;
const MODEL_METHODS = new Set(['encode', 'encode_query', 'encode_document', 'predict', 'rank']);
/** Password-hasher objects whose `hash`/`verify` are slow by design. */
const HASHER_TYPES = /^(@?passlib\.(context\.)?CryptContext|@?argon2\.PasswordHasher|@?pwdlib\.PasswordHash)/;
/**
 * Expressions that hold a whole file's content. Request and webhook bodies are left out on
 * purpose: servers cap them, and parsing a few kilobytes on the loop costs microseconds —
 * reviewing real services, every such finding was noise.
 */
const PAYLOAD_METHODS = new Set(['read', 'read_bytes', 'read_text', 'readall']);

/** Names the CPU-heavy call, or null. */
export function cpuHeavyCall(model: FileModel, call: CallInfo): string | null {
  if (call.offloaded) return null;
  const what = cpuHeavyName(model, call);
  return what && !call.awaited ? what : null;
}

function cpuHeavyName(model: FileModel, call: CallInfo): string | null {
  const q = call.qualifiedName;
  if (q) {
    if (ALWAYS_HEAVY.has(q) || /^pandas\.read_(csv|excel|json|parquet|table|xml|html|feather|fwf|pickle)$/.test(q)) {
      if (hasOnlyLiteralArgs(call.node)) return null;
      // `json.load(f)` of a file the code names (`with (here / "manifest.json").open() as f`): a
      // file shipped with the code or its deployment, its size the author's, not the data's.
      if (q === 'json.load' && namedFileHandle(model, firstArg(call.node), call.functionIndex, 0)) return null;
      return q;
    }
    if (PAYLOAD_HEAVY.has(q) || LOOP_HEAVY.has(q)) {
      if (isPayload(model, firstArg(call.node), call.functionIndex, 0)) return q;
      // PyYAML and pickle parse in Python: one document is cheap, a loop of them is not.
      return LOOP_HEAVY.has(q) && call.loops.length > 0 ? `${q} (per item of a loop)` : null;
    }
  }
  // A whole DataFrame rendered to a file format: CPU in proportion to the rows (`to_excel` runs openpyxl in Python).
  if (DATAFRAME_WRITERS.has(call.method) && call.hasReceiver) {
    const t = receiverType(model, call);
    if (t && DATAFRAME_TYPES.test(t)) return `pandas.DataFrame.${call.method}`;
  }
  // Pixels decoded from an opened image: `Image.open(f).convert("RGB")`, `img.thumbnail(size)`.
  if (IMAGE_DECODERS.has(call.method) && call.hasReceiver) {
    const inner = call.receiver?.type === 'call' ? call.receiver.childForFieldName('function')?.text ?? '' : '';
    const t = inner ? null : receiverType(model, call);
    if ((inner && /(^|\.)Image\.open$/.test(inner) && model.source.includes('PIL')) || (t && IMAGE_TYPES.test(t))) return `PIL.Image.Image.${call.method}`;
  }
  if (MODEL_METHODS.has(call.method) && call.hasReceiver) {
    const t = receiverType(model, call);
    if (t && MODEL_TYPES.test(t)) return `${t.replace(/^@/, '').replace(/\(\)$/, '')}.${call.method}`;
  }
  if ((call.method === 'hash' || call.method === 'verify' || call.method === 'verify_and_update' || call.method === 'encrypt') && call.hasReceiver) {
    const t = receiverType(model, call);
    if (t && HASHER_TYPES.test(t)) return `${t.replace(/^@/, '').replace(/\(\)$/, '')}.${call.method}`;
  }
  return null;
}

function firstArg(node: SyntaxNode): SyntaxNode | null {
  const a = node.childForFieldName('arguments')?.namedChild(0) ?? null;
  return a?.type === 'keyword_argument' ? a.childForFieldName('value') : a;
}

function hasOnlyLiteralArgs(node: SyntaxNode): boolean {
  const args = node.childForFieldName('arguments')?.namedChildren ?? [];
  return args.length > 0 && args.every((a) => a.type === 'string' || a.type === 'integer' || a.type === 'concatenated_string');
}

function isPayload(model: FileModel, node: SyntaxNode | null, fnIndex: number, depth: number): boolean {
  if (!node || depth > 3) return false;
  switch (node.type) {
    case 'await':
    case 'parenthesized_expression':
      return isPayload(model, node.namedChild(0), fnIndex, depth + 1);
    case 'call': {
      const fn = node.childForFieldName('function');
      if (fn?.type !== 'attribute') return false;
      const method = fn.childForFieldName('attribute')?.text ?? '';
      // `f.read()` is the whole content; `f.read(16)` (a block, an IV from a random source) is not;
      // nor the body of an HTTP response (`with urlopen(req) as resp: resp.read()`): an API's reply,
      // a few kilobytes as request bodies are (see PAYLOAD_METHODS).
      if (PAYLOAD_METHODS.has(method)) {
        if (responseBody(model, fn.childForFieldName('object'), fnIndex, node.startPosition.row + 1)) return false;
        return method !== 'read' || (node.childForFieldName('arguments')?.namedChildCount ?? 0) === 0;
      }
      // `.encode()` / `.decode()` of a payload is still the payload.
      return (method === 'encode' || method === 'decode') && isPayload(model, fn.childForFieldName('object'), fnIndex, depth + 1);
    }
    case 'identifier': {
      const best = lastBinding(model, node.text, fnIndex, node.startPosition.row + 1);
      return best ? isPayload(model, best.value, fnIndex, depth + 1) : false;
    }
    default:
      return false;
  }
}

/** The name's last binding in the function at or before `line` (a `with ... as` one included). */
function lastBinding(model: FileModel, name: string, fnIndex: number, line: number) {
  let best = null;
  for (const a of assignmentsTo(model, name)) {
    if (a.functionIndex === fnIndex && a.line <= line && (!best || a.line >= best.line)) best = a;
  }
  return best;
}

/** A name bound (last, in the function) to what an HTTP client returned: `urlopen(...)`, `requests.get(...)`, `await client.get(...)`. */
function responseBody(model: FileModel, object: SyntaxNode | null, fnIndex: number, line: number): boolean {
  if (object?.type !== 'identifier') return false;
  let v = lastBinding(model, object.text, fnIndex, line)?.value ?? null;
  if (v?.type === 'await') v = v.namedChild(0);
  if (v?.type !== 'call') return false;
  const callee = v.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
  const q = resolveName(model, callee);
  return (!!q && networkFunction(q) !== null) || /(^|\.)(urlopen|(?:http_?)?client\.(get|post|put|patch|delete|request))$/i.test(callee);
}

/** A file handle opened on a path the code names (see {@link namedPath}): `open("x.json")`, `with p.open() as f` with `p = base / "x.json"`. */
function namedFileHandle(model: FileModel, node: SyntaxNode | null, fnIndex: number, depth: number): boolean {
  if (!node || depth > 3) return false;
  if (node.type === 'identifier') {
    const v = boundOnce(model, node.text, fnIndex, node.startPosition.row + 1);
    return !!v && namedFileHandle(model, v, fnIndex, depth + 1);
  }
  if (node.type !== 'call') return false;
  const fn = node.childForFieldName('function');
  if (fn?.type === 'identifier' && (fn.text === 'open' || fn.text === 'io.open')) return namedPath(model, firstArg(node), fnIndex, depth + 1);
  if (fn?.type === 'attribute' && fn.childForFieldName('attribute')?.text === 'open') {
    const object = fn.childForFieldName('object');
    if (object && /^(io|codecs)$/.test(object.text)) return namedPath(model, firstArg(node), fnIndex, depth + 1);
    return namedPath(model, object, fnIndex, depth + 1);
  }
  return false;
}

/**
 * A path the code spells out whole: string literals, `__file__`, module constants and locals
 * bound once to such paths, joined by `/`, `os.path.join`, `Path(...)`, or walked with `.parent`
 * (`Path(__file__).parent / "manifest.json"`). Not one with a parameter or a request's value in
 * it (`os.path.join(RESULTS, job_id, "result.json")`): that file is as large as the job made it.
 */
function namedPath(model: FileModel, node: SyntaxNode | null, fnIndex: number, depth: number): boolean {
  let n = node;
  while (n && n.type === 'parenthesized_expression') n = n.namedChild(0);
  if (!n || depth > 8) return false;
  if (n.type === 'string') return !n.namedChildren.some((c) => c.type === 'interpolation');
  if (n.type === 'binary_operator' && /^[/+]$/.test(n.childForFieldName('operator')?.text ?? '')) {
    return namedPath(model, n.childForFieldName('left'), fnIndex, depth + 1) && namedPath(model, n.childForFieldName('right'), fnIndex, depth + 1);
  }
  if (n.type === 'identifier') {
    if (n.text === '__file__') return true;
    const own = fnIndex >= 0 && (model.functions[fnIndex]!.params.some((p) => p.name === n.text) || assignmentsTo(model, n.text).some((a) => a.functionIndex === fnIndex));
    const v = own ? boundOnce(model, n.text, fnIndex, n.startPosition.row + 1) : fnIndex >= 0 ? boundOnce(model, n.text, -1, Infinity) : null;
    return !!v && namedPath(model, v, fnIndex, depth + 1);
  }
  if (n.type === 'attribute') {
    return /^(parent|stem|name)$/.test(n.childForFieldName('attribute')?.text ?? '') && namedPath(model, n.childForFieldName('object'), fnIndex, depth + 1);
  }
  if (n.type === 'call') {
    const fn = n.childForFieldName('function');
    const args = (n.childForFieldName('arguments')?.namedChildren ?? []).filter((a) => a.type !== 'comment');
    if (/^(os\.path\.(join|dirname|abspath|realpath)|(pathlib\.)?(Pure)?Path)$/.test(fn?.text ?? '')) {
      return args.length > 0 && args.every((a) => a.type !== 'keyword_argument' && namedPath(model, a, fnIndex, depth + 1));
    }
    // `here.resolve()`, `here.joinpath("x.json")`.
    if (fn?.type === 'attribute' && /^(resolve|absolute|joinpath)$/.test(fn.childForFieldName('attribute')?.text ?? '')) {
      return namedPath(model, fn.childForFieldName('object'), fnIndex, depth + 1) && args.every((a) => namedPath(model, a, fnIndex, depth + 1));
    }
  }
  return false;
}

/** The value `name` is bound to when the function binds it once before `line` (a `with ... as name` binds its context expression). */
function boundOnce(model: FileModel, name: string, fnIndex: number, line: number): SyntaxNode | null {
  const own = assignmentsTo(model, name).filter((a) => a.functionIndex === fnIndex);
  return own.length === 1 && own[0]!.line <= line ? own[0]!.value : null;
}
