// The home page: anyone may upload images; each result shows its links and delete token.

import { mountUploader } from "/assets/uploader.js";

mountUploader({
  root: document.getElementById("uploader"),
  directUrl: "/v1/images",
  largeUrl: "/v1/uploads",
});
