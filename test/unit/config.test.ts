import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, loadConfig } from '../../src/config.ts'

const required = { client_username: 'u', client_password: 'p', directory_backup: '/b', directory_restore: '/r' }

describe('loadConfig', () => {
  it('applies the defaults of SPEC §6', () => {
    const { config, warnings } = loadConfig(required)
    assert.deepEqual(warnings, [])
    assert.equal(config.clientPort, 8000)
    assert.equal(config.clientHost, '0.0.0.0')
    assert.equal(config.scriptsPath, '/var/vcap/jobs/backup-agent/backup')
    assert.equal(config.allowedToDeleteFiles, false)
    assert.equal(config.skipStorage, false)
    assert.equal(config.defaultS3Endpoint, 's3.amazonaws.com')
    assert.equal(config.maxJobNumber, 10)
    assert.deepEqual(config.scriptEnvPassthrough, ['PATH', 'LD_LIBRARY_PATH', 'LANG', 'TZ', 'HOME'])
    assert.equal(config.scriptLogMaxBytes, 65536)
    assert.deepEqual(config.scriptParameterNames, [])
    assert.equal(config.logLevel, 'info')
    assert.equal(config.caFile, undefined)
    assert.equal(config.tlsCertFile, undefined)
    assert.equal(config.tlsKeyFile, undefined)
    assert.equal(config.tlsClientCaFile, undefined)
    assert.equal(config.scriptSecretArgs, true)
    assert.equal(config.authMaxFailures, 10)
    assert.deepEqual(config.authThrottleExempt, [])
    assert.equal(config.jobGroup, undefined)
  })

  it('reads the security settings of SPEC §7', () => {
    const { config, warnings } = loadConfig({
      ...required,
      tls_cert_file: '/c.pem',
      tls_key_file: '/k.pem',
      tls_client_ca_file: '/ca.pem',
      script_secret_args: 'false',
      auth_max_failures: '0',
      auth_throttle_exempt: '10.0.0.5, 192.168.0.0/16,::1',
      job_group: 'vcap',
    })
    assert.deepEqual(warnings, [])
    assert.equal(config.tlsCertFile, '/c.pem')
    assert.equal(config.tlsKeyFile, '/k.pem')
    assert.equal(config.tlsClientCaFile, '/ca.pem')
    assert.equal(config.scriptSecretArgs, false)
    assert.equal(config.authMaxFailures, 0)
    assert.deepEqual(config.authThrottleExempt, ['10.0.0.5', '192.168.0.0/16', '::1'])
    assert.equal(config.jobGroup, 'vcap')
  })

  it('reads script_parameter_names as a comma list of variable names, all or nothing', () => {
    const { config, warnings } = loadConfig({ ...required, script_parameter_names: 'PGPORT, retryCount ,MYSQL_TCP_PORT,' })
    assert.deepEqual(warnings, [])
    assert.deepEqual(config.scriptParameterNames, ['PGPORT', 'retryCount', 'MYSQL_TCP_PORT'])
    const reserved = loadConfig({ ...required, script_parameter_names: 'PGPORT,TAR_OPTIONS,http_proxy' })
    assert.deepEqual(reserved.config.scriptParameterNames, ['PGPORT', 'TAR_OPTIONS', 'http_proxy'])
    assert.deepEqual(
      reserved.warnings.map((w) => w.split(' stays')[0]),
      ['script_parameter_names: TAR_OPTIONS', 'script_parameter_names: http_proxy'],
    )
    for (const value of ['PGPORT,bad-name', 'a=b', '1X', 'é']) {
      const loaded = loadConfig({ ...required, script_parameter_names: value })
      assert.deepEqual(loaded.config.scriptParameterNames, [], value)
      assert.equal(loaded.warnings.length, 1, value)
      assert.match(loaded.warnings[0] as string, /^script_parameter_names: /)
    }
  })

  it('falls back to no exemption when an address cannot be read', () => {
    for (const value of ['manager.local', '10.0.0.5,nope', '10.0.0.0/33', '10.0.0.1/8/2']) {
      const { config, warnings } = loadConfig({ ...required, auth_throttle_exempt: value })
      assert.deepEqual(config.authThrottleExempt, [], value)
      assert.equal(warnings.length, 1, value)
    }
  })

  it('refuses half a TLS setup rather than serving plain HTTP', () => {
    assert.throws(
      () => loadConfig({ ...required, tls_cert_file: '/c.pem' }),
      (e: Error) => e instanceof ConfigError && /tls_cert_file and tls_key_file must be set together/.test(e.message),
    )
    assert.throws(() => loadConfig({ ...required, tls_key_file: '/k.pem' }), ConfigError)
    assert.throws(
      () => loadConfig({ ...required, tls_client_ca_file: '/ca.pem' }),
      (e: Error) => /tls_client_ca_file needs/.test(e.message),
    )
  })

  it('names every missing required setting in one error', () => {
    assert.throws(
      () => loadConfig({ log_level: 'info' }),
      (e: Error) => e instanceof ConfigError && /client_username, client_password, directory_backup, directory_restore/.test(e.message),
    )
  })

  it('parses values and falls back to the default, with a warning that does not echo the value', () => {
    const { config, warnings } = loadConfig({
      ...required,
      client_port: '9001',
      max_job_number: 'secret-ish-typo',
      allowed_to_delete_files: 'TRUE',
      script_env_passthrough: 'PATH, HOME ,',
      log_level: 'loud',
    })
    assert.equal(config.clientPort, 9001)
    assert.equal(config.maxJobNumber, 10)
    assert.equal(config.allowedToDeleteFiles, true)
    assert.deepEqual(config.scriptEnvPassthrough, ['PATH', 'HOME'])
    assert.equal(config.logLevel, 'info')
    assert.equal(warnings.length, 2)
    assert.ok(warnings.every((w) => !w.includes('secret-ish-typo')))
  })

  it('reads log_format: auto by default, json or pretty when asked, auto for anything else', () => {
    assert.equal(loadConfig(required).config.logFormat, 'auto')
    assert.equal(loadConfig({ ...required, log_format: 'JSON' }).config.logFormat, 'json')
    assert.equal(loadConfig({ ...required, log_format: 'pretty' }).config.logFormat, 'pretty')
    const { config, warnings } = loadConfig({ ...required, log_format: 'colourful' })
    assert.equal(config.logFormat, 'auto')
    assert.deepEqual(warnings, ['log_format: cannot use the value given; using the default "auto"'])
  })

  it('rejects out-of-range numbers', () => {
    const { config, warnings } = loadConfig({ ...required, client_port: '70000', max_job_number: '0' })
    assert.equal(config.clientPort, 8000)
    assert.equal(config.maxJobNumber, 10)
    assert.equal(warnings.length, 2)
  })

  it('reads storage_gc_grace_hours as hours with fractions, and verify_after_upload as a flag', () => {
    assert.equal(loadConfig(required).config.storageGcGraceHours, 24)
    assert.equal(loadConfig(required).config.verifyAfterUpload, false)
    assert.equal(loadConfig({ ...required, storage_gc_grace_hours: '0.25' }).config.storageGcGraceHours, 0.25)
    assert.equal(loadConfig({ ...required, storage_gc_grace_hours: '0' }).config.storageGcGraceHours, 0)
    assert.equal(loadConfig({ ...required, verify_after_upload: 'true' }).config.verifyAfterUpload, true)
    for (const bad of ['-1', '1e3', '8761', '.5', 'soon']) {
      const { config, warnings } = loadConfig({ ...required, storage_gc_grace_hours: bad })
      assert.equal(config.storageGcGraceHours, 24, bad)
      assert.equal(warnings.length, 1, bad)
    }
  })

  it("never passes the agent's own settings to scripts, even when script_env_passthrough names them", () => {
    const { config, warnings } = loadConfig({ ...required, script_env_passthrough: 'PATH,client_password,tls_key_file,PGPASSFILE' })
    assert.deepEqual(config.scriptEnvPassthrough, ['PATH', 'PGPASSFILE'])
    assert.equal(warnings.length, 1)
    assert.match(warnings[0] as string, /client_password, tls_key_file left out/)
  })
})

describe('demo start', () => {
  it('with no SPEC §6 variable: loopback, everything under ./var, the demo scripts', () => {
    const { config } = loadConfig({ PATH: '/usr/bin', local_storage_root: 'store' }, '/tmp/try')
    assert.equal(config.demo, true)
    assert.equal(config.clientHost, '127.0.0.1')
    assert.equal(config.directoryBackup, '/tmp/try/var/backup')
    assert.equal(config.directoryRestore, '/tmp/try/var/restore')
    assert.equal(config.directoryState, '/tmp/try/var/state')
    assert.match(config.scriptsPath, /examples\/scripts\/demo$/)
    assert.equal(config.localStorageRoot, '/tmp/try/store')
  })

  it('as soon as any SPEC §6 variable is set, SPEC §6 holds in full', () => {
    for (const name of ['log_level', 'client_port', 'client_username', 'skip_storage']) {
      assert.throws(() => loadConfig({ [name]: 'x' }, '/tmp/try'), ConfigError, name)
    }
    // even set to an empty value: no surprise demo
    assert.throws(() => loadConfig({ client_host: '' }, '/tmp/try'), ConfigError)
    const { config } = loadConfig(required, '/tmp/try')
    assert.equal(config.demo, false)
    assert.equal(config.clientHost, '0.0.0.0')
    assert.equal(config.localStorageRoot, '/tmp/try/var/storage')
  })
})
