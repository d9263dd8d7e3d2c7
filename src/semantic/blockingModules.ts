/**
 * The libraries whose functions the blocking catalogue (blockingIo.ts) names, by module head: a
 * module-level alias of one of their functions is followed (model.ts), and one handed to another
 * function as an argument is recorded (analysis/effects.ts). A leaf module: the semantic model
 * imports it, and the catalogue imports the model.
 */
export const BLOCKING_MODULES =
  /^(requests|httpx|httpx2|subprocess|os|shutil|socket|urllib|urllib3|smtplib|ftplib|telnetlib|poplib|imaplib|nntplib|glob|io|gzip|bz2|lzma|tarfile|zipfile|fsspec|shelve|dbm|pickle|codecs|stripe|time)\./;
