// The environment a lifecycle script gets (SPEC §5): the passthrough variables copied from the
// agent's own environment, the request parameters, and with skipStorage the destination fields.
// Nothing else of the agent's environment (it holds client_password) reaches a script.
import { isSecretParameter, type Destination, type JobRequest } from '../jobs/request.ts'

/** Variables the agent sets for skipStorage jobs, by destination type. */
function storageVariables(d: Destination): Record<string, string> {
  if (d.type === 'S3') {
    return {
      S3_BUCKET: d.bucket,
      S3_ENDPOINT: d.endpoint,
      S3_REGION: d.region ?? '',
      S3_AUTHKEY: d.authKey,
      S3_AUTHSECRET: d.authSecret,
      S3_SKIPSSL: String(!d.useSSL),
      S3_FILENAMEPREFIX: d.filenamePrefix,
    }
  }
  if (d.type === 'LOCAL') return {}
  return {
    SWIFT_AUTHURL: d.authUrl,
    SWIFT_DOMAIN: d.domain,
    SWIFT_CONTAINERNAME: d.containerName,
    SWIFT_PROJECTNAME: d.projectName,
    SWIFT_USERNAME: d.username,
    SWIFT_PASSWORD: d.password,
  }
}

const AGENT_SET = [
  'S3_BUCKET',
  'S3_ENDPOINT',
  'S3_REGION',
  'S3_AUTHKEY',
  'S3_AUTHSECRET',
  'S3_SKIPSSL',
  'S3_FILENAMEPREFIX',
  'SWIFT_AUTHURL',
  'SWIFT_DOMAIN',
  'SWIFT_CONTAINERNAME',
  'SWIFT_PROJECTNAME',
  'SWIFT_USERNAME',
  'SWIFT_PASSWORD',
  'DB_PASSWORD',
  'ENCRYPTION_KEY',
  'BACKUP_STREAM',
  'RESTORE_STREAM',
]
/**
 * script_env_passthrough's default. Reserved whatever the setting says: PATH decides which
 * programs a script runs (and which bash the agent starts), HOME where tools read their start-up
 * files (.psqlrc, .my.cnf, .gitconfig), LANG and TZ name files the C library reads.
 */
export const DEFAULT_PASSTHROUGH: readonly string[] = ['PATH', 'LD_LIBRARY_PATH', 'LANG', 'TZ', 'HOME']
/** Names that change how bash or the dynamic loader behave: a parameter must never set them. */
const SHELL_AND_LOADER = ['BASH_ENV', 'ENV', 'IFS', 'CDPATH', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'GLOBIGNORE', 'POSIXLY_CORRECT']
/**
 * The same danger one step further: variables with which the C library loads code or reads
 * attacker-chosen files (the ones glibc drops for setuid programs), the start-up hooks of the
 * interpreters a script may call (perl, python, node, ruby, java), and the configuration that
 * made openssl load a library and tar run a command. Scripts run as root. Lower-case names keep
 * most of these out already (SPEC §3); this list also holds against script_parameter_names.
 */
const LIBRARY_AND_INTERPRETER = [
  'GCONV_PATH',
  'GETCONF_DIR',
  'GLIBC_TUNABLES',
  'HOSTALIASES',
  'LOCALDOMAIN',
  'LOCPATH',
  'NIS_PATH',
  'NLSPATH',
  'RESOLV_HOST_CONF',
  'RES_OPTIONS',
  'TZDIR',
  'PERL5OPT',
  'PERL5LIB',
  'PERLLIB',
  'PERL5DB',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONSTARTUP',
  'PYTHONINSPECT',
  'PYTHONWARNINGS',
  'NODE_OPTIONS',
  'NODE_PATH',
  'RUBYOPT',
  'RUBYLIB',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'JDK_JAVA_OPTIONS',
  'OPENSSL_CONF',
  'OPENSSL_ENGINES',
  'OPENSSL_MODULES',
  'TAR_OPTIONS',
]
/** BASH_ covers BASH_ENV, BASH_FUNC_* (exported functions), BASH_XTRACEFD, BASH_LOADABLES_PATH. */
const RESERVED_PREFIXES = ['AGENT_', 'LD_', 'BASH_', 'MALLOC_', 'NPM_CONFIG_']
/** curl, wget, git, pip… read both `http_proxy` and `HTTP_PROXY` (also no_proxy, all_proxy). */
const RESERVED_SUFFIXES = ['_PROXY']

/**
 * Why a parameter name may not be used, or undefined when it may. Compared without regard to
 * case: tools read some of these in either case (`http_proxy`, `npm_config_*`), and a name that
 * differs from a reserved one only by case has no use but to confuse.
 */
export function reservedNameReason(name: string, passthrough: readonly string[]): string | undefined {
  const upper = name.toUpperCase()
  if (AGENT_SET.includes(upper)) return 'is set by the agent'
  if (passthrough.some((p) => p.toUpperCase() === upper)) return 'is passed through from the agent (script_env_passthrough)'
  if (DEFAULT_PASSTHROUGH.includes(upper))
    return "is one of the agent's own variables scripts get by default (PATH, HOME, LANG, TZ, LD_LIBRARY_PATH)"
  if (SHELL_AND_LOADER.includes(upper)) return 'changes how the shell behaves'
  if (LIBRARY_AND_INTERPRETER.includes(upper)) return 'makes the C library, an interpreter or a tool load code'
  const prefix = RESERVED_PREFIXES.find((p) => upper.startsWith(p))
  if (prefix) return `starts with the reserved prefix ${prefix} (in any case)`
  const suffix = RESERVED_SUFFIXES.find((p) => upper.endsWith(p))
  if (suffix) return `ends with ${suffix} (in any case): tools take it as a proxy`
  return undefined
}

export function scriptEnvironment(
  request: JobRequest,
  passthrough: readonly string[],
  agentEnv: Record<string, string | undefined>,
): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of passthrough) {
    const value = agentEnv[name]
    if (value !== undefined) env[name] = value
  }
  Object.assign(env, request.database.parameters)
  if (request.destination.skipStorage) Object.assign(env, storageVariables(request.destination))
  return env
}

/**
 * The values of passed-through variables whose name says they are secret (PGPASSWORD,
 * VAULT_TOKEN, MYSQL_PWD…: the same rule as parameters): scripts get them, so their output is
 * masked for them like for the request's secrets.
 */
export function passthroughSecrets(passthrough: readonly string[], agentEnv: Record<string, string | undefined>): string[] {
  return passthrough
    .filter(isSecretParameter)
    .map((name) => agentEnv[name] ?? '')
    .filter((value) => value !== '')
}
