'use strict';
// The self-test page's only script: served from /app.js, as the strict
// CSP allows, never inline.
const $ = (id) => document.getElementById(id);

async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(body === undefined ? {} : body),
  });
  const text = await r.text();
  if (!r.ok) {
    throw new Error(path + ': ' + r.status + ' ' + text);
  }
  return JSON.parse(text);
}

function show(text) {
  $('status').textContent = text;
}

$('greet').addEventListener('click', () => {
  $('msg').textContent = 'Hello, ' + $('name').value + '!';
});

$('register').addEventListener('click', async () => {
  try {
    const opts = await post('/passkey/register/begin');
    const cred = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(opts.publicKey),
    });
    const res = await post('/passkey/register/finish', cred.toJSON());
    show('registered ' + res.name);
  } catch (e) {
    show('error: ' + e);
  }
});

async function login(kind) {
  try {
    const opts = await post('/passkey/' + kind + '/begin');
    const cred = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(opts.publicKey),
    });
    const res = await post('/passkey/' + kind + '/finish', cred.toJSON());
    show(kind + ' ok ' + res.name + ' count ' + res.signCount);
  } catch (e) {
    show('error: ' + e);
  }
}

$('login').addEventListener('click', () => login('login'));
$('discover').addEventListener('click', () => login('discover'));
