// The example scripts (examples/scripts/<database>) end to end against real servers: data in,
// backup through the agent, wipe, restore through the agent, data compared. LOCAL destination.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { startMariadb, startPostgres, startRedis, type Server } from '../helpers/databases.ts'

const EXAMPLES = new URL('../../examples/scripts/', import.meta.url).pathname
const DB_USER = 'backup_admin'
const DB_PASSWORD = 'db-Pw-7"x$y'
const ENCRYPTION_KEY = 'example-enc-key-Q2'

async function roundTrip(agent: Agent, id: string, database: string, parameters: Record<string, string>, options: { compression: boolean; encryption: boolean }, wipe: () => void) {
  const base = { id, compression: options.compression, encryption_key: options.encryption ? ENCRYPTION_KEY : null, destination: { type: 'LOCAL', filenamePrefix: `${database}/` } }
  const db = { host: '127.0.0.1', username: DB_USER, password: DB_PASSWORD, database, parameters: [parameters] }
  assert.equal((await agent.request('POST', '/backup', { ...base, backup: db })).status, 201)
  const backup = await agent.waitFor('backup', id, 120_000)
  assert.equal(backup.status, 'SUCCEEDED', `${backup.error_message}\n${backup.backup_errorlog}`)
  assert.ok(backup.filesize.size > 0)
  if (options.encryption) assert.match(backup.filename, /\.enc$/)
  wipe()
  const restoreBody = { ...base, destination: { ...base.destination, filename: backup.filename }, restore: db }
  assert.equal((await agent.request('PUT', '/restore', restoreBody)).status, 201)
  const restore = await agent.waitFor('restore', id, 120_000)
  assert.equal(restore.status, 'SUCCEEDED', `${restore.error_message}\n${restore.restore_errorlog}`)
  agent.assertNoSecrets([DB_PASSWORD, ENCRYPTION_KEY])
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

  for (const options of [{ compression: false, encryption: false }, { compression: true, encryption: true }]) {
    it(`backs up, wipes, restores (compression ${options.compression}, encryption ${options.encryption})`, async () => {
      const psql = (sql: string, db = 'shop') => server.client(['psql', '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql]).trim()
      psql('DROP DATABASE IF EXISTS shop', 'postgres')
      psql('CREATE DATABASE shop', 'postgres')
      psql("CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, qty int); INSERT INTO orders (item, qty) SELECT 'item-' || g, g FROM generate_series(1, 500) g; CREATE INDEX ON orders (item)")
      const before = psql('SELECT count(*), sum(qty), md5(string_agg(item, \',\' ORDER BY id)) FROM orders')
      await roundTrip(agent, `pg-${options.encryption}`, 'shop', { PGPORT: String(server.port) }, options, () => psql('DROP TABLE orders'))
      assert.equal(psql('SELECT count(*), sum(qty), md5(string_agg(item, \',\' ORDER BY id)) FROM orders'), before)
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

  for (const options of [{ compression: false, encryption: false }, { compression: true, encryption: true }]) {
    it(`backs up, wipes, restores (compression ${options.compression}, encryption ${options.encryption})`, async () => {
      const sql = (statement: string) => server.client(['mariadb', '--no-defaults', '-h', '127.0.0.1', '-u', DB_USER, '-N', '-B', '-e', statement]).trim()
      sql('DROP DATABASE IF EXISTS shop; CREATE DATABASE shop')
      sql("USE shop; CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(64) NOT NULL, qty INT) ENGINE=InnoDB; INSERT INTO shop.orders (item, qty) SELECT CONCAT('item-', seq), seq FROM seq_1_to_500")
      const before = sql("SELECT COUNT(*), SUM(qty), MD5(GROUP_CONCAT(item ORDER BY id SEPARATOR ',')) FROM shop.orders")
      await roundTrip(agent, `maria-${options.encryption}`, 'shop', { MYSQL_TCP_PORT: String(server.port) }, options, () => sql('DROP DATABASE shop'))
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

  for (const options of [{ compression: false, encryption: false }, { compression: true, encryption: true }]) {
    it(`backs up, wipes, restores (compression ${options.compression}, encryption ${options.encryption})`, async () => {
      const redis = (...args: string[]) => server.client(['redis-cli', '-p', String(server.port), ...args]).trim()
      redis('FLUSHALL')
      for (let i = 0; i < 200; i++) redis('SET', `key:${i}`, `value-${i}`)
      redis('HSET', 'order:1', 'item', 'book', 'qty', '3')
      redis('RPUSH', 'queue', 'a', 'b', 'c')
      const snapshot = () => [redis('DBSIZE'), redis('GET', 'key:123'), redis('HGETALL', 'order:1'), redis('LRANGE', 'queue', '0', '-1')].join('|')
      const before = snapshot()
      await roundTrip(agent, `redis-${options.encryption}`, '0', { REDIS_PORT: String(server.port) }, options, () => redis('FLUSHALL'))
      assert.equal(snapshot(), before)
    })
  }
})
