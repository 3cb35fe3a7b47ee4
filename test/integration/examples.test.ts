// The example scripts (examples/scripts/<database>) end to end against real servers: data in,
// backup through the agent, wipe, restore through the agent, data compared. LOCAL destination.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { generateKeyPairSync } from 'node:crypto'
import { startMariadb, startPostgres, startRedis, type Server } from '../helpers/databases.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'
import { swiftLab } from '../helpers/swift.ts'

const EXAMPLES = new URL('../../examples/scripts/', import.meta.url).pathname
const DB_USER = 'backup_admin'
const DB_PASSWORD = 'db-Pw-7"x$y'
const ENCRYPTION_KEY = 'example-enc-key-Q2'

interface RoundTrip {
  compression: boolean
  encryption: boolean
  /** Default: LOCAL under <database>/. */
  destination?: Record<string, unknown>
  /** Streaming mode: the keys the backup and the restore request carry. */
  stream?: { backupKey: string; restoreKey: string }
}

async function roundTrip(
  agent: Agent,
  id: string,
  database: string,
  parameters: Record<string, string>,
  options: RoundTrip,
  wipe: () => void,
) {
  const destination = options.destination ?? { type: 'LOCAL', filenamePrefix: `${database}/` }
  const key = options.stream ? options.stream.backupKey : options.encryption ? ENCRYPTION_KEY : null
  const base = { id, compression: options.compression, encryption_key: key, destination }
  const db = { host: '127.0.0.1', username: DB_USER, password: DB_PASSWORD, database, parameters: [parameters] }
  assert.equal((await agent.request('POST', '/backup', { ...base, backup: db })).status, 201)
  const backup = await agent.waitFor('backup', id, 120_000)
  assert.equal(backup.status, 'SUCCEEDED', `${backup.error_message}\n${backup.backup_errorlog}`)
  assert.ok(backup.filesize.size > 0)
  if (options.encryption && !options.stream) assert.match(backup.filename, /\.enc$/)
  if (options.stream) assert.match(backup.filename, /\.osb$/)
  wipe()
  const restoreKey = options.stream ? options.stream.restoreKey : key
  const restoreBody = { ...base, encryption_key: restoreKey, destination: { ...base.destination, filename: backup.filename }, restore: db }
  assert.equal((await agent.request('PUT', '/restore', restoreBody)).status, 201)
  const restore = await agent.waitFor('restore', id, 120_000)
  assert.equal(restore.status, 'SUCCEEDED', `${restore.error_message}\n${restore.restore_errorlog}`)
  if (options.stream) assert.match(restore.restore_log, /restored the stream/)
  assert.equal(restore.checksum_verified, true)
  agent.assertNoSecrets([DB_PASSWORD, ENCRYPTION_KEY, ...(options.stream ? [options.stream.backupKey] : [])])
}

function exampleAgent(database: string): Promise<Agent> {
  // the example folder itself is scripts_path: tests run the files operators copy
  return startAgent({ noDefaultScripts: true, env: { scripts_path: join(EXAMPLES, database), local_storage_root: 'storage' } })
}

describe('example scripts: PostgreSQL', () => {
  let server: Server
  let agent: Agent
  before(async () => {
    server = await startPostgres(DB_USER, DB_PASSWORD)
    agent = await exampleAgent('postgresql')
  })
  after(async () => {
    await agent?.stop()
    await server?.stop()
  })

  const pair = generateKeyPairSync('x25519')
  const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const s3 = s3Lab()
  const swift = swiftLab()
  const bucket = uniqueName('agent-pg')
  const container = uniqueName('agent-pg')
  const variants: (RoundTrip & { name: string })[] = [
    { name: 'file mode, LOCAL', compression: false, encryption: false },
    { name: 'file mode, LOCAL, compression and encryption', compression: true, encryption: true },
    {
      name: 'streaming to S3, compressed, passphrase',
      compression: true,
      encryption: true,
      stream: { backupKey: 'pg-stream-passphrase-R4', restoreKey: 'pg-stream-passphrase-R4' },
      destination: {
        type: 'S3',
        bucket,
        endpoint: s3.hostPort,
        useSSL: false,
        authKey: s3.accessKey,
        authSecret: s3.secretKey,
        filenamePrefix: 'pg/',
      },
    },
    {
      name: 'streaming to Swift (Keystone v3), compressed, X25519 key pair',
      compression: true,
      encryption: true,
      stream: { backupKey: publicPem, restoreKey: privatePem },
      destination: swift.destination('v3', container),
    },
  ]
  for (const options of variants) {
    it(`backs up, wipes, restores (${options.name})`, async () => {
      if (options.destination?.type === 'S3') await s3.createBucket(bucket)
      if (options.destination?.type === 'SWIFT') await (await swift.account('v3')).createContainer(container)
      const psql = (sql: string, db = 'shop') =>
        server.client(['psql', '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql]).trim()
      psql('DROP DATABASE IF EXISTS shop', 'postgres')
      psql('CREATE DATABASE shop', 'postgres')
      psql(
        "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, qty int); INSERT INTO orders (item, qty) SELECT 'item-' || g, g FROM generate_series(1, 500) g; CREATE INDEX ON orders (item)",
      )
      const before = psql("SELECT count(*), sum(qty), md5(string_agg(item, ',' ORDER BY id)) FROM orders")
      const parameters: Record<string, string> = { port: String(server.port), ...(options.stream ? { stream: 'true' } : {}) }
      await roundTrip(agent, `pg-${options.name.replace(/[^a-z0-9]+/gi, '-')}`, 'shop', parameters, options, () =>
        psql('DROP TABLE orders'),
      )
      assert.equal(psql("SELECT count(*), sum(qty), md5(string_agg(item, ',' ORDER BY id)) FROM orders"), before)
    })
  }
})

describe('example scripts: MariaDB', () => {
  let server: Server
  let agent: Agent
  before(async () => {
    server = await startMariadb(DB_USER, DB_PASSWORD)
    agent = await exampleAgent('mariadb')
  })
  after(async () => {
    await agent?.stop()
    await server?.stop()
  })

  for (const options of [
    { compression: false, encryption: false },
    { compression: true, encryption: true },
  ]) {
    it(`backs up, wipes, restores (compression ${options.compression}, encryption ${options.encryption})`, async () => {
      const sql = (statement: string) =>
        server.client(['mariadb', '--no-defaults', '-h', '127.0.0.1', '-u', DB_USER, '-N', '-B', '-e', statement]).trim()
      sql('DROP DATABASE IF EXISTS shop; CREATE DATABASE shop')
      sql(
        "USE shop; CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(64) NOT NULL, qty INT) ENGINE=InnoDB; INSERT INTO shop.orders (item, qty) SELECT CONCAT('item-', seq), seq FROM seq_1_to_500",
      )
      const before = sql("SELECT COUNT(*), SUM(qty), MD5(GROUP_CONCAT(item ORDER BY id SEPARATOR ',')) FROM shop.orders")
      await roundTrip(agent, `maria-${options.encryption}`, 'shop', { port: String(server.port) }, options, () => sql('DROP DATABASE shop'))
      assert.equal(sql("SELECT COUNT(*), SUM(qty), MD5(GROUP_CONCAT(item ORDER BY id SEPARATOR ',')) FROM shop.orders"), before)
    })
  }
})

describe('example scripts: Redis', () => {
  let server: Server
  let agent: Agent
  before(async () => {
    server = await startRedis(DB_PASSWORD)
    agent = await exampleAgent('redis')
  })
  after(async () => {
    await agent?.stop()
    await server?.stop()
  })

  for (const options of [
    { compression: false, encryption: false },
    { compression: true, encryption: true },
  ]) {
    it(`backs up, wipes, restores (compression ${options.compression}, encryption ${options.encryption})`, async () => {
      const redis = (...args: string[]) => server.client(['redis-cli', '-p', String(server.port), ...args]).trim()
      redis('FLUSHALL')
      for (let i = 0; i < 200; i++) redis('SET', `key:${i}`, `value-${i}`)
      redis('HSET', 'order:1', 'item', 'book', 'qty', '3')
      redis('RPUSH', 'queue', 'a', 'b', 'c')
      const snapshot = () =>
        [redis('DBSIZE'), redis('GET', 'key:123'), redis('HGETALL', 'order:1'), redis('LRANGE', 'queue', '0', '-1')].join('|')
      const before = snapshot()
      await roundTrip(agent, `redis-${options.encryption}`, '0', { port: String(server.port) }, options, () => redis('FLUSHALL'))
      assert.equal(snapshot(), before)
    })
  }
})
