// A classic script, run before the modules (it waits for no module graph): when the tab
// opens on the users page with a token, the first page of users is asked for at once. The
// users page takes the answer when it matches its first request (users.js, prefetchUsers);
// anything else (no answer, an error, a 401) and the page asks again itself.
(function () {
  'use strict';
  try {
    var token = sessionStorage.getItem('pbx-portal.token');
    if (!token || !/^(#\/?(users)?)?$/.test(location.hash)) return;
    var q = '?limit=50&offset=0&order=extension&direction=asc';
    var promise = fetch('/users' + q, {
      headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
      cache: 'no-store',
    })
      .then(function (r) {
        return r.ok ? r.json() : null;
      })
      .catch(function () {
        return null;
      });
    window.pbxFirstPage = { q: q, at: Date.now(), promise: promise };
  } catch (e) {
    // the users page asks itself
  }
})();
